from django.conf import settings
from django.http import JsonResponse


class UploadSizeLimitMiddleware:
    """Answer 413 from Content-Length before Django reads an oversized body to disk."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.DOCENT_MAX_UPLOAD_BYTES + 64 * 1024:  # room for multipart framing
            mb = settings.DOCENT_MAX_UPLOAD_BYTES // (1024 * 1024)
            return JsonResponse(
                {"error": {"code": "too_large", "message": f"the upload is larger than the {mb} MB limit"}},
                status=413,
            )
        return self.get_response(request)
