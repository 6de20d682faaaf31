"""Production: every secret and service from the environment; a missing one fails at start."""

import os

for _name in ("DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
    if not os.environ.get(_name):
        raise RuntimeError(f"{_name} must be set in production")

from .base import *  # noqa: E402,F403

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
