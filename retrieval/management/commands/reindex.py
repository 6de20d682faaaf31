from django.core.management.base import BaseCommand

from retrieval import services
from retrieval.embeddings import get_embedder


class Command(BaseCommand):
    help = "Re-embed every document whose vectors were made by another embedding model than the current one."

    def handle(self, **options):
        model = get_embedder().model_name
        n = services.documents_reindex(model_name=model)
        self.stdout.write(f"queued {n} documents for re-embedding with {model}")
