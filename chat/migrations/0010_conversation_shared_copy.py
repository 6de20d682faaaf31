from django.db import migrations, models

FINAL = ("complete", "stopped", "interrupted", "failed", "refused")


def copy_shared(apps, schema_editor):
    """A link shared before the copy existed keeps showing what it showed: the messages up to
    `shared_at` (in the shape of chat.selectors.message_out, as it stood here)."""
    Conversation = apps.get_model("chat", "Conversation")
    for conversation in Conversation.objects.filter(share_token__isnull=False):
        messages = [
            m
            for m in conversation.messages.filter(created_at__lte=conversation.shared_at).order_by("created_at")
            if m.role == "user" or m.status in FINAL
        ]
        answer = lambda m, value: value if m.role == "assistant" else []  # noqa: E731
        conversation.shared_messages = [
            {
                "id": str(m.id),
                "role": m.role,
                "text": m.text,
                "status": m.status,
                "sources": answer(m, m.citations),
                "checks": answer(m, m.checks),
                "finish_reason": m.finish_reason or None,
                "error_code": m.error_code or None,
                "reply_to": str(m.reply_to_id) if m.reply_to_id else None,
                "created_at": m.created_at.isoformat(),
            }
            for m in messages
        ]
        conversation.shared_collections = sorted(
            {
                s["collection_id"]
                for m in messages
                for s in [*(m.citations or []), *(m.sources or [])]
                if s.get("collection_id") is not None
            }
        )
        conversation.save(update_fields=["shared_messages", "shared_collections"])


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0009_conversation_documents"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="shared_collections",
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
        migrations.AddField(
            model_name="conversation",
            name="shared_messages",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(copy_shared, migrations.RunPython.noop),
    ]
