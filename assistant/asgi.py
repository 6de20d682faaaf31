import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings.local")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from assistant.middleware import BodySizeLimit, UploadRateLimit  # noqa: E402
from chat.routing import websocket_urlpatterns as chat_ws  # noqa: E402
from retrieval.routing import websocket_urlpatterns as retrieval_ws  # noqa: E402


def _warm_up() -> None:
    """Load the embedding model in the background, so the first question does not wait for it."""
    import threading

    from django.conf import settings

    def load() -> None:
        from retrieval.embeddings import get_embedder

        try:
            get_embedder().embed_query("warm up")
        except Exception:  # readiness reports a broken embedder; start-up must not die of it
            pass

    if settings.DOCENT_WARM_UP:
        threading.Thread(target=load, name="embedder-warm-up", daemon=True).start()


_warm_up()

application = ProtocolTypeRouter(
    {
        "http": BodySizeLimit(UploadRateLimit(django_asgi_app)),
        # Browsers always send Origin on websockets; a foreign one is refused before auth runs.
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(retrieval_ws + chat_ws))),
    }
)
