import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from retrieval import services
from retrieval.models import Collection, Document, Team
from retrieval.parsing import FOLDER_EXTENSIONS, UnsupportedType, folder_skips


def resolve_collection(name: str, team_name: str | None) -> Collection:
    if team_name:
        team = services.team_get_or_create(name=team_name)
        return Collection.objects.get_or_create(team=team, name=name, deleted_at=None)[0]
    matches = list(Collection.objects.filter(name=name, deleted_at=None))
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise CommandError(f"several teams have a collection named {name!r}; say which with --team")
    team = Team.objects.filter(deleted_at=None).order_by("id").first() or services.team_get_or_create(
        name="Default"
    )
    return Collection.objects.create(team=team, name=name)


def expand(paths: list[str]) -> list[tuple[Path, str]]:
    """(file, the name its document keeps): a file of a folder is named by its path from the folder
    on ("docs/howto/README.md"), as the library names a folder's files, so READMEs stay apart; as
    there, a folder's hidden and dependency folders (.git, node_modules) are left out."""
    files: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            root = path.resolve()
            for p in sorted(path.rglob("*")):
                name = p.resolve().relative_to(root).as_posix()
                if p.is_file() and p.suffix.lower() in FOLDER_EXTENSIONS and not folder_skips(name):
                    files.append((p, f"{root.name}/{name}"))
        elif path.is_file():
            files.append((path, path.name))
        else:
            raise CommandError(f"{raw}: no such file or directory")
    return files


def wait_for(ids: list[int], out, poll: float = 1.0) -> dict[str, int]:
    last = None
    while True:
        counts = {s: 0 for s in Document.Status.values}
        for status in Document.objects.filter(id__in=ids).values_list("status", flat=True):
            counts[status] += 1
        line = " ".join(f"{k}={v}" for k, v in counts.items())
        if line != last:
            out.write(line)
            last = line
        if counts["queued"] + counts["processing"] == 0:
            return counts
        time.sleep(poll)


class Command(BaseCommand):
    help = "Ingest files or folders into a collection (through the same path as uploads)."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--collection", required=True)
        parser.add_argument("--team")
        parser.add_argument(
            "--wait", action="store_true", help="wait until the worker has ingested every file"
        )
        parser.add_argument("--sync", action="store_true", help="ingest in this process, without a worker")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="each file is a new version: once it is ready, the collection's older documents of the "
            "same file name are deleted",
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="a folder's documents whose file is gone from it are deleted (with --replace, run from cron, "
            "the collection follows the folder)",
        )
        parser.add_argument("--batch", type=int, default=32, help="documents per ingestion task")

    def handle(self, *args, paths, collection, team, wait, sync, batch, replace, prune, **options):
        target = resolve_collection(collection, team)
        ids, skipped = [], 0
        files = expand(list(paths))
        if prune:
            present = {name for _, name in files}
            for folder in sorted({Path(p).resolve().name for p in paths if Path(p).is_dir()}):
                for name in services.folder_prune(collection=target, folder=folder, present=present):
                    self.stdout.write(f"{name}: gone from the folder, deleted")
        for path, name in files:
            try:
                with path.open("rb") as fh:
                    document, created = services.document_create(
                        collection=target, file=fh, filename=name, enqueue=False, replace=replace
                    )
            except (UnsupportedType, services.UploadTooLarge) as exc:
                self.stderr.write(f"{path}: skipped: {exc}")
                skipped += 1
                continue
            if created or document.status in (Document.Status.QUEUED, Document.Status.PROCESSING):
                ids.append(document.id)
        self.stdout.write(f"{len(ids)} documents to ingest into {target}; {skipped} skipped")
        if sync:
            for i in range(0, len(ids), max(batch, 1)):
                services.documents_ingest(document_ids=ids[i : i + batch])
            counts = wait_for(ids, self.stdout)
        else:
            services.documents_enqueue(document_ids=ids, batch_size=max(batch, 1))
            if not wait:
                return
            counts = wait_for(ids, self.stdout)
        for d in Document.objects.filter(id__in=ids, status=Document.Status.FAILED):
            self.stderr.write(f"failed: {d.original_name}: {d.error}")
        if counts.get("failed"):
            sys.exit(1)
