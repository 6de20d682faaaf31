from django.core.management.base import BaseCommand

from retrieval import services
from retrieval.embeddings import get_embedder
from retrieval.models import Document


class Command(BaseCommand):
    help = (
        "Re-embed every document whose vectors were made by another embedding model than the current one; "
        "with --keywords, rebuild the BM25 keyword index from the stored chunks instead; with --reparse KIND, "
        "read every document of that type again with the current parser."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--keywords",
            action="store_true",
            help="rebuild the BM25 postings and statistics (after restoring a dump on another architecture)",
        )

        parser.add_argument(
            "--reparse",
            choices=Document.Kind.values,
            metavar="KIND",
            help=f"read every ready document of this type again ({', '.join(Document.Kind.values)}), "
            "after an upgrade that reads it better",
        )

    def handle(self, **options):
        if options["reparse"]:
            n = services.documents_reparse(kind=options["reparse"])
            self.stdout.write(f"queued {n} {options['reparse']} documents to be read again")
            return
        if options["keywords"]:
            n = services.keyword_index_rebuild()
            self.stdout.write(f"rebuilt the keyword index: {n} postings")
            return
        model = get_embedder().model_name
        n = services.documents_reindex(model_name=model)
        self.stdout.write(f"queued {n} documents for re-embedding with {model}")
