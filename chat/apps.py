from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import moderation
        from .models import ModerationRule

        # A rule saved in Django admin applies at once here and within about a second in other processes.
        post_save.connect(
            moderation.rules_changed, sender=ModerationRule, dispatch_uid="moderation-rules-save"
        )
        post_delete.connect(
            moderation.rules_changed, sender=ModerationRule, dispatch_uid="moderation-rules-del"
        )
