"""Laptop settings: embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL say otherwise."""

import os
import secrets

from assistant import embedded

os.environ.setdefault("DJANGO_DEBUG", "1")
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = embedded.postgres_url()
if not os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = embedded.redis_url()

from .base import *  # noqa: E402,F403
from .base import DATA_DIR, DEBUG  # noqa: E402

if not SECRET_KEY:  # noqa: F405
    if not DEBUG:
        raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    # A per-checkout key, so sessions survive restarts without a secret in git.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
    SECRET_KEY = key_file.read_text().strip()
