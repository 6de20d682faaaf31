"""Shared set-up for the benchmarks: a Django process on its own embedded services under var/bench-data."""

from __future__ import annotations

import gzip
import json
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DOCENT_SHARED_DATA") or ROOT.parent / "shared" / "data")


def setup_django() -> None:
    os.environ.setdefault("DOCENT_DATA_DIR", str(ROOT / "var" / "bench-data"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings.local")
    os.environ.setdefault("DOCENT_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def machine() -> str:
    return (
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def result(name: str, value: float, unit: str, **extra) -> dict:
    row = {"name": name, "value": round(float(value), 4), "unit": unit}
    row.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in extra.items() if v is not None})
    if "target" in row and "met" not in row:
        row["met"] = None
    return row


def rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sqlalchemy_url() -> str:
    """The database Django uses now, as a SQLAlchemy URL for the langchain-postgres peer."""
    from django.db import connection

    from tests.support.processes import database_url

    return database_url(connection.settings_dict).replace("postgresql://", "postgresql+psycopg://", 1)
