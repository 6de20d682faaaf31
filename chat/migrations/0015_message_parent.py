import django.db.models.deletion
from django.db import migrations, models


def link_questions(apps, schema_editor):
    """Each later question follows the answer its conversation showed for the question before it
    (the version chosen or made last), so that conversations read as they did before branches."""
    Message = apps.get_model("chat", "Message")
    rows = Message.objects.order_by("conversation_id", "created_at", "id").values_list(
        "id", "conversation_id", "role", "reply_to_id", "chosen_at", "created_at"
    )
    changed, conversation, questions, answers = [], None, [], {}

    def flush():
        shown = None
        for qid in questions:
            if shown is not None:
                changed.append(Message(id=qid, parent_id=shown))
            versions = answers.get(qid)
            if versions:
                shown = max(versions, key=lambda a: (a[1] or a[2], a[2]))[0]

    for mid, cid, role, reply_to, chosen_at, created_at in rows.iterator(chunk_size=2000):
        if cid != conversation:
            flush()
            conversation, questions, answers = cid, [], {}
        if role == "user":
            questions.append(mid)
        elif reply_to is not None:
            answers.setdefault(reply_to, []).append((mid, chosen_at, created_at))
    flush()
    Message.objects.bulk_update(changed, ["parent"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0014_preferences"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="followups",
                to="chat.message",
            ),
        ),
        migrations.RunPython(link_questions, migrations.RunPython.noop),
    ]
