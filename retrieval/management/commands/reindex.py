from django.core.management.base import BaseCommand

from retrieval import services
from retrieval.embeddings import get_embedder


class Command(BaseCommand):
    help = (
        "Re-embed every document whose vectors were made by another embedding model than the current one; "
        "with --keywords, rebuild the BM25 keyword index from the stored chunks instead."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--keywords",
            action="store_true",
            help="rebuild the BM25 postings and statistics (after restoring a dump on another architecture)",
        )

    def handle(self, **options):
        if options["keywords"]:
            n = services.keyword_index_rebuild()
            self.stdout.write(f"rebuilt the keyword index: {n} postings")
            return
        model = get_embedder().model_name
        n = services.documents_reindex(model_name=model)
        self.stdout.write(f"queued {n} documents for re-embedding with {model}")
