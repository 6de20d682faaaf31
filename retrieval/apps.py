from django.apps import AppConfig


class RetrievalConfig(AppConfig):
    name = "retrieval"
    verbose_name = "Knowledge"
    default_auto_field = "django.db.models.BigAutoField"
