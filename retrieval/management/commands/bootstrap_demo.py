import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from retrieval import services
from retrieval.models import Collection, Document, Membership

# Each answered well by the demo's own pages, offline too (checked by asking them).
DEMO_QUESTIONS = [
    "How do I upload documents?",
    "How does search work?",
    "What do the numbers in an answer mean?",
    "What happens when I close the tab during an answer?",
]


class Command(BaseCommand):
    help = (
        "Create the demo admin, team Demo and collection demo holding docs/*.md (once; reruns add"
        " nothing, and a changed file replaces its older version)."
    )

    def handle(self, **options):
        User = get_user_model()
        password = os.environ.get("DOCENT_ADMIN_PASSWORD")
        admin = User.objects.filter(username="admin").first()
        generated = None
        if admin is None:
            generated = None if password else secrets.token_urlsafe(12)
            admin = User.objects.create_superuser("admin", email="", password=password or generated)
        elif password:
            admin.set_password(password)
            admin.save(update_fields=["password"])
        team = services.team_get_or_create(name="Demo")
        services.membership_set(team=team, user=admin, role=Membership.Role.ADMIN)
        collection, _ = Collection.objects.get_or_create(
            team=team, name="demo", deleted_at=None, defaults={"description": "Docent's own documentation"}
        )
        if not collection.starter_questions:  # offered on the chat page; an admin's own choice stays
            services.collection_update(collection=collection, starter_questions=DEMO_QUESTIONS)
        ids = []
        for path in sorted((Path(settings.BASE_DIR) / "docs").glob("*.md")):
            with path.open("rb") as fh:
                # A page that changed since the last run is a new version: once it is ready its older
                # version goes, so the demo never answers from two versions of one page, nor from none.
                document, created = services.document_create(
                    collection=collection,
                    file=fh,
                    filename=path.name,
                    user=admin,
                    enqueue=False,
                    replace=True,
                )
            if created or document.status == Document.Status.QUEUED:
                ids.append(document.id)
            if not created:
                # The page is back to a version already here (say, an edit undone): that one is current.
                stale = Document.objects.filter(
                    collection=collection, original_name=path.name, uploaded_by=admin
                ).exclude(id=document.id)
                for old in stale:
                    services.document_delete(document=old)
        services.documents_enqueue(document_ids=ids, batch_size=8)
        self.stdout.write(f"demo: {len(ids)} documents queued for ingestion")
        if generated:
            self.stdout.write(f"ADMIN_PASSWORD {generated}")
