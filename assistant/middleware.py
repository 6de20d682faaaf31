from django.conf import settings
from django.http import HttpResponse, JsonResponse

from retrieval import limits


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


class SignInRateLimitMiddleware:
    """Sign-in attempts (the app's and the admin's form) per client address: 429 with Retry-After past
    `DOCENT_RATE_LIMITS["login"]`, so a password cannot be guessed at the speed of the network."""

    PATHS = ("/accounts/login/", "/admin/login/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "POST" and request.path in self.PATHS:
            try:
                limits.limit_hit(action="login", key=request.META.get("REMOTE_ADDR") or "unknown")
            except limits.RateLimited as exc:
                response = HttpResponse(
                    f"Too many sign-in attempts. Try again in {exc.retry_after} s.\n",
                    status=429,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = str(exc.retry_after)
                return response
        return self.get_response(request)
