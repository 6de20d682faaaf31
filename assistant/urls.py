from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from assistant import health
from chat import openai_api

# The admin says whose it is, as the rest of the site does.
admin.site.site_header = "Docent administration"
admin.site.site_title = "Docent admin"
admin.site.index_title = "Teams, documents, conversations and limits"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("assistant.api_urls")),
    path("v1/models", openai_api.models, name="openai-models"),
    path("v1/models/<path:model_id>", openai_api.model, name="openai-model"),
    path("v1/chat/completions", openai_api.chat_completions, name="openai-chat-completions"),
    path("", include("retrieval.urls")),
    path("", include("chat.urls")),
]
