"""Test settings: the real embedded PostgreSQL+pgvector and Redis, in their own data directory."""

import os
from pathlib import Path

from assistant import embedded

_base = Path(
    os.environ.get("DOCENT_TEST_DATA_DIR") or Path(__file__).resolve().parent.parent.parent / "var" / "test"
)
os.environ.setdefault("DOCENT_DATA_DIR", str(_base))
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = embedded.postgres_url(_base, durable=False)
if not os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = embedded.redis_url(_base)

from .base import *  # noqa: E402,F403

DEBUG = False
SECRET_KEY = "test-only-not-secret"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DOCENT_STUCK_AFTER_S = 5
DOCENT_WEB_CRAWL_DELAY_S = 0.0
DOCENT_PARSE_TIMEOUT_S = 20
DOCENT_PARSE_MEMORY_MB = 768
# Close connections after each request and task, so worker threads leave none open at teardown.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# The suite asks and uploads faster than anyone would: limits are off unless a test sets one (in
# settings, or for a server process in its environment).
DOCENT_RATE_LIMITS = {
    action: rate if f"DOCENT_RATE_{action.upper()}" in os.environ else ""
    for action, rate in DOCENT_RATE_LIMITS.items()  # noqa: F405
}
