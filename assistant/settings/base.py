"""Settings shared by every environment. Everything that differs comes from the environment.

See https://docs.djangoproject.com/en/5.2/ref/settings/ and the contract's environment table.
"""

import os
import re
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_rate(name: str, default: str) -> str:
    """A rate as django-ratelimit reads it ("30/m", "500/h", "5/10s"); "0" or "off" turns it off.
    Checked here, so that a typo stops the start instead of every request."""
    value = os.environ.get(name, default).strip()
    if value.lower() in {"", "0", "off", "none"}:
        return ""
    if not re.fullmatch(r"[1-9]\d*/\d*[smhd]", value):
        raise ValueError(f"{name}={value!r}: expected a rate such as 30/m, 500/h or 5/10s")
    return value


def env_checks(name: str, default: str, known: set[str]) -> tuple[str, ...]:
    """A comma-separated list of names from `known`; "off" or "none" for none."""
    value = os.environ.get(name, default).strip().lower()
    if value in {"", "off", "none", "0"}:
        return ()
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{name}={value!r}: unknown {', '.join(unknown)}; expected any of {sorted(known)}")
    return names


DATA_DIR = Path(os.environ.get("DOCENT_DATA_DIR") or BASE_DIR / "var").resolve()
DEBUG = env_bool("DJANGO_DEBUG")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
# Earlier keys, comma-separated, while rotating: sessions, reset links and sealed web source headers
# made under them still open.
SECRET_KEY_FALLBACKS = [k for k in os.environ.get("DJANGO_SECRET_KEY_FALLBACKS", "").split(",") if k]
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    # The API explorer's Swagger UI from ninja's own static files, not a CDN (offline, and the CSP).
    "ninja",
    "retrieval",
    "chat",
]

MIDDLEWARE = [
    "assistant.middleware.RequestIdMiddleware",
    "assistant.middleware.MetricsMiddleware",
    "assistant.middleware.UnstorableTextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "assistant.middleware.SignInRateLimitMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "assistant.middleware.ContentSecurityPolicyMiddleware",
]
# The app's pages load nothing from elsewhere and run no inline script or style ('self' covers the
# page's own websocket too). Empty: no header.
DOCENT_CONTENT_SECURITY_POLICY = os.environ.get(
    "DOCENT_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
)

ROOT_URLCONF = "assistant.urls"
ASGI_APPLICATION = "assistant.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "retrieval.views.accounts",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")

DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
    if DATABASE_URL
    else {}
}
if DATABASES:
    # libpq waits for as long as TCP does (minutes) on a host that does not answer: readiness,
    # /metrics and every request would hang with it. `?connect_timeout=` in the URL wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "docent",
        # Rate limits and the moderation rules' version are read here on every question: a Redis that
        # stalls must fail these reads (the limits then open) rather than hang the question.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

# channels_redis: a channel holds `capacity` messages and drops silently past it, so answers are
# streamed from the consumer and only progress/control events cross the layer.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 times sockets out after 5 s by default, which is exactly channels_redis's blocking pop:
        # the timeout here outlasts it.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "capacity": 500, "expiry": 30},
    }
}

# Sessions in the database alone: with cached_db, every request also writes the session to Redis,
# so a Redis outage would sign everyone out of the whole site (one indexed read per request either way).
SESSION_ENGINE = "django.contrib.sessions.backends.db"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Password reset by email, on when an SMTP server is named (docs/operations.md, "Email"); without
# one, an administrator resets a forgotten password in Django admin.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", not env_bool("EMAIL_USE_SSL"))
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Docent <docent@localhost>")
DOCENT_PASSWORD_RESET = bool(EMAIL_HOST)
PASSWORD_RESET_TIMEOUT = env_int("DOCENT_PASSWORD_RESET_TIMEOUT_S", 3 * 24 * 3600)

# Single sign-on with OpenID Connect, on when an issuer and a client id are named (docs/operations.md,
# "Single sign-on"). mozilla-django-oidc runs the code flow; its OIDC_* settings are set from ours, and
# the provider's endpoints are found from the issuer (retrieval/sso.py).
DOCENT_OIDC_ISSUER = os.environ.get("DOCENT_OIDC_ISSUER", "").rstrip("/")
OIDC_RP_CLIENT_ID = os.environ.get("DOCENT_OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = os.environ.get("DOCENT_OIDC_CLIENT_SECRET", "")
DOCENT_OIDC_NAME = os.environ.get("DOCENT_OIDC_NAME", "single sign-on")  # "Sign in with <name>"
OIDC_RP_SCOPES = os.environ.get("DOCENT_OIDC_SCOPES", "openid email profile")
OIDC_RP_SIGN_ALGO = os.environ.get("DOCENT_OIDC_SIGN_ALGO", "RS256")
OIDC_CREATE_USER = env_bool("DOCENT_OIDC_CREATE_USERS", True)
DOCENT_OIDC_GROUPS_CLAIM = os.environ.get("DOCENT_OIDC_GROUPS_CLAIM", "")
# Comma-separated groups whose people may sign in with the provider; empty: anyone it signs in.
DOCENT_OIDC_ALLOWED_GROUPS = os.environ.get("DOCENT_OIDC_ALLOWED_GROUPS", "")
# Set (" admins"), a group named like a team plus it ("Research admins") makes that team's admins.
DOCENT_OIDC_TEAM_ADMIN_SUFFIX = os.environ.get("DOCENT_OIDC_TEAM_ADMIN_SUFFIX", "")
DOCENT_OIDC_TRUST_EMAIL = env_bool("DOCENT_OIDC_TRUST_EMAIL", False)
DOCENT_OIDC_SESSION_HOURS = env_float("DOCENT_OIDC_SESSION_HOURS", 0)  # 0: as long as a password session
# Off (with single sign-on on): only superusers sign in with a password, everyone else with the provider.
DOCENT_PASSWORD_SIGN_IN = env_bool("DOCENT_PASSWORD_SIGN_IN", True)
# Signing out of Docent also ends the session at the provider (its end_session_endpoint).
DOCENT_OIDC_SIGN_OUT = env_bool("DOCENT_OIDC_SIGN_OUT", False)
OIDC_USE_PKCE = True
OIDC_TIMEOUT = env_int("DOCENT_OIDC_TIMEOUT_S", 10)
OIDC_AUTHENTICATION_CALLBACK_URL = "sso_callback"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "retrieval.sso.SsoBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True  # serve from the source tree too, so collectstatic is optional locally
MEDIA_ROOT = DATA_DIR / "uploads"

# Celery: https://docs.celeryq.dev/en/stable/userguide/configuration.html
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Hard limits stay well below the broker's visibility timeout, or a long task would be delivered twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_SOFT_TIME_LIMIT = 1200
CELERY_TASK_TIME_LIMIT = 1500
CELERY_WORKER_MAX_MEMORY_PER_CHILD = 2_000_000  # KiB: recycle a child that grew past 2 GB
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "ingestion-sweep": {"task": "retrieval.tasks.sweep_stuck_documents", "schedule": 60.0},
    "interrupted-answers-sweep": {"task": "chat.tasks.sweep_interrupted_answers", "schedule": 30.0},
    "web-sources-refresh": {"task": "retrieval.tasks.refresh_web_sources", "schedule": 300.0},
    "audit-purge": {"task": "retrieval.tasks.purge_audit_events", "schedule": 3600.0},
    "conversations-expire": {"task": "chat.tasks.expire_conversations", "schedule": 3600.0},
}

# Documents and ingestion
DOCENT_MAX_UPLOAD_BYTES = env_int("DOCENT_MAX_UPLOAD_BYTES", 50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DOCENT_MAX_DOCUMENT_CHARS = env_int("DOCENT_MAX_DOCUMENT_CHARS", 20_000_000)
DOCENT_PARSE_TIMEOUT_S = env_int("DOCENT_PARSE_TIMEOUT_S", 120)
DOCENT_PARSE_MEMORY_MB = env_int("DOCENT_PARSE_MEMORY_MB", 1536)
# Scanned PDF pages are read by OCR with Tesseract, when it is installed (Debian: tesseract-ocr).
DOCENT_OCR = env_bool("DOCENT_OCR", True)
DOCENT_OCR_LANGUAGES = os.environ.get("DOCENT_OCR_LANGUAGES", "eng")  # Tesseract's names: eng, deu, eng+fra
DOCENT_OCR_MAX_PAGES = env_int("DOCENT_OCR_MAX_PAGES", 200)  # scanned pages per document

# Web sources: pages read from the web into a collection, and read again on a schedule. Only public
# addresses, unless listed here (host names, or networks such as 10.0.0.0/8: an intranet wiki).
DOCENT_WEB_PRIVATE_HOSTS = [
    h.strip() for h in os.environ.get("DOCENT_WEB_PRIVATE_HOSTS", "").split(",") if h.strip()
]
DOCENT_WEB_MAX_PAGES = env_int("DOCENT_WEB_MAX_PAGES", 500)  # the most one source may read
DOCENT_WEB_MAX_SOURCES = env_int("DOCENT_WEB_MAX_SOURCES", 50)  # the most one collection may have
DOCENT_WEB_TIMEOUT_S = env_float("DOCENT_WEB_TIMEOUT_S", 20.0)
DOCENT_WEB_CRAWL_DELAY_S = env_float("DOCENT_WEB_CRAWL_DELAY_S", 0.5)  # between a crawl's pages
# A reading goes in slices of this long, each a task, so that other tasks run between them.
DOCENT_WEB_SLICE_S = env_int("DOCENT_WEB_SLICE_S", 60)
# A reading stops here; what it found is kept, nothing else deleted.
DOCENT_WEB_READING_S = env_int("DOCENT_WEB_READING_S", 3600)
# The audit log (sign-ins, members, shares, deletions, keys) keeps events this many days; 0: for ever.
DOCENT_AUDIT_RETENTION_DAYS = env_int("DOCENT_AUDIT_RETENTION_DAYS", 365)
DOCENT_INGEST_MAX_ATTEMPTS = env_int("DOCENT_INGEST_MAX_ATTEMPTS", 4)
# A document in "processing" whose heartbeat is older than this is taken as abandoned by a dead worker.
DOCENT_STUCK_AFTER_S = env_int("DOCENT_STUCK_AFTER_S", 300)
DOCENT_CHUNK_TOKENS = env_int("DOCENT_CHUNK_TOKENS", 200)
DOCENT_CHUNK_OVERLAP_TOKENS = env_int("DOCENT_CHUNK_OVERLAP_TOKENS", 32)

# Embeddings
DOCENT_EMBEDDING_BACKEND = os.environ.get("DOCENT_EMBEDDING_BACKEND", "local")
DOCENT_EMBEDDING_DIMENSIONS = 384  # fixed by the vector column; the openai backend asks for this size
DOCENT_EMBEDDING_MODEL = os.environ.get(
    "DOCENT_EMBEDDING_MODEL",
    "sentence-transformers/all-MiniLM-L6-v2"
    if DOCENT_EMBEDDING_BACKEND == "local"
    else "text-embedding-3-small",
)
DOCENT_EMBEDDING_BATCH = env_int("DOCENT_EMBEDDING_BATCH", 64)
DOCENT_WARM_UP = env_bool("DOCENT_WARM_UP", True)  # load the model when the web process starts

# Model provider (OpenAI or any compatible server); unset means offline mode.
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "")
DOCENT_CHAT_MODEL = os.environ.get("DOCENT_CHAT_MODEL", "gpt-4o-mini")
# Other models of the same provider people may choose per conversation (comma-separated); the chat
# page offers a choice when there is more than DOCENT_CHAT_MODEL.
DOCENT_CHAT_MODELS = [m.strip() for m in os.environ.get("DOCENT_CHAT_MODELS", "").split(",") if m.strip()]
DOCENT_PROVIDER_TIMEOUT_S = env_float("DOCENT_PROVIDER_TIMEOUT_S", 120.0)  # the whole answer
DOCENT_PROVIDER_CONNECT_TIMEOUT_S = env_float("DOCENT_PROVIDER_CONNECT_TIMEOUT_S", 5.0)
DOCENT_PROVIDER_FIRST_TOKEN_S = env_float("DOCENT_PROVIDER_FIRST_TOKEN_S", 30.0)
DOCENT_PROVIDER_MAX_RETRIES = env_int("DOCENT_PROVIDER_MAX_RETRIES", 3)
DOCENT_RETRY_AFTER_CAP_S = env_float("DOCENT_RETRY_AFTER_CAP_S", 20.0)

# Answers
DOCENT_CONTEXT_TOKENS = env_int("DOCENT_CONTEXT_TOKENS", 8192)
DOCENT_MAX_ANSWER_TOKENS = env_int("DOCENT_MAX_ANSWER_TOKENS", 1024)
DOCENT_PROMPT_PASSAGES = env_int("DOCENT_PROMPT_PASSAGES", 6)
# Below this cosine similarity for the best passage, the answer is an honest refusal.
DOCENT_MIN_RELEVANCE = env_float("DOCENT_MIN_RELEVANCE", 0.25)
# ... or this, for a passage that dense and keyword search both rank in their first three.
DOCENT_AGREED_MIN_RELEVANCE = env_float("DOCENT_AGREED_MIN_RELEVANCE", 0.10)
DOCENT_CHECKPOINT_S = env_float("DOCENT_CHECKPOINT_S", 1.0)
DOCENT_INTERRUPTED_AFTER_S = env_int("DOCENT_INTERRUPTED_AFTER_S", 60)
# A retention policy: conversations with no question or answer for this many days are deleted (the
# tokens they spent stay counted); 0 keeps them until their owner deletes them.
DOCENT_CONVERSATION_RETENTION_DAYS = env_int("DOCENT_CONVERSATION_RETENTION_DAYS", 0)
DOCENT_MAX_QUESTION_CHARS = env_int("DOCENT_MAX_QUESTION_CHARS", 8000)
DOCENT_MONTHLY_TOKEN_QUOTA = env_int("DOCENT_MONTHLY_TOKEN_QUOTA", 0)  # per user; 0 means unlimited
DOCENT_MAX_FRAME_BYTES = env_int("DOCENT_MAX_FRAME_BYTES", 64 * 1024)

# Rate limits per user (sign-in: per client address), counted in Redis; past one, 429 with
# Retry-After (websocket: a `rate_limited` error with `retry_after`). docs/api.md, "Limits".
DOCENT_RATE_LIMITS = {
    "ask": env_rate("DOCENT_RATE_ASK", "30/m"),
    "search": env_rate("DOCENT_RATE_SEARCH", "120/m"),
    "upload": env_rate("DOCENT_RATE_UPLOAD", "300/m"),
    "login": env_rate("DOCENT_RATE_LOGIN", "20/m"),
}
RATELIMIT_FAIL_OPEN = True  # a cache that cannot count does not refuse everyone

# Moderation of questions before any model sees them (docs/api.md, "Moderation"): admins' rules
# always available offline; `openai` asks the provider's /v1/moderations endpoint.
DOCENT_MODERATION = env_checks("DOCENT_MODERATION", "rules", {"rules", "openai"})
DOCENT_MODERATION_MODEL = os.environ.get("DOCENT_MODERATION_MODEL", "omni-moderation-latest")
DOCENT_MODERATION_TIMEOUT_S = env_float("DOCENT_MODERATION_TIMEOUT_S", 5.0)
DOCENT_MODERATION_FAIL_CLOSED = env_bool("DOCENT_MODERATION_FAIL_CLOSED", False)
DOCENT_MODERATION_RULES_TTL_S = env_float("DOCENT_MODERATION_RULES_TTL_S", 30.0)
# How often a process compares the rules' shared version (one cache read) before a question.
DOCENT_MODERATION_RULES_RECHECK_S = env_float("DOCENT_MODERATION_RULES_RECHECK_S", 1.0)
# While rules apply to answers, this many characters of a streaming answer wait to be checked.
DOCENT_MODERATION_ANSWER_HOLD_CHARS = env_int("DOCENT_MODERATION_ANSWER_HOLD_CHARS", 80)
if "openai" in DOCENT_MODERATION and not (OPENAI_API_KEY or OPENAI_BASE_URL):
    raise ValueError("DOCENT_MODERATION=openai needs a provider: set OPENAI_API_KEY or OPENAI_BASE_URL")

# Retrieval (defaults tuned on SciFact train queries; see docs/benchmarks.md)
DOCENT_SEARCH_K = env_int("DOCENT_SEARCH_K", 8)
DOCENT_RRF_K = env_int("DOCENT_RRF_K", 60)
# Hybrid search leaves out of the fusion BM25 hits scoring under this share of the best one.
DOCENT_KEYWORD_FLOOR = env_float("DOCENT_KEYWORD_FLOOR", 0.15)
DOCENT_BM25_K1 = env_float("DOCENT_BM25_K1", 1.2)
DOCENT_BM25_B = env_float("DOCENT_BM25_B", 0.75)
DOCENT_CANDIDATES = env_int("DOCENT_CANDIDATES", 100)
# The least HNSW candidate list: at 100k chunks recall@10 against exact search was 0.956 at 100, 0.987
# at 160, for half a millisecond more (docs/benchmarks.md).
DOCENT_HNSW_EF_SEARCH = env_int("DOCENT_HNSW_EF_SEARCH", 160)
# Below this many accessible chunks, dense search is exact: complete under any filter, and fast enough.
DOCENT_EXACT_SEARCH_MAX = env_int("DOCENT_EXACT_SEARCH_MAX", 20000)

# A second stage after fusion (off unless a model is named): the best fused candidates re-scored
# by a cross-encoder at a rerank endpoint (Cohere / Jina format: vLLM, llama.cpp's server, Infinity,
# Jina, Cohere; or text-embeddings-inference's, DOCENT_RERANK_API=tei), `OPENAI_BASE_URL`/rerank unless
# DOCENT_RERANK_URL says where. When it fails or is
# slow, the fused order stands.
DOCENT_RERANK_MODEL = os.environ.get("DOCENT_RERANK_MODEL", "")
DOCENT_RERANK_URL = os.environ.get("DOCENT_RERANK_URL", "") or (
    OPENAI_BASE_URL.rstrip("/") + "/rerank" if OPENAI_BASE_URL else ""
)
DOCENT_RERANK_API_KEY = os.environ.get("DOCENT_RERANK_API_KEY", "") or OPENAI_API_KEY
DOCENT_RERANK_API = os.environ.get("DOCENT_RERANK_API", "cohere").strip().lower()  # or "tei"
DOCENT_RERANK_CANDIDATES = env_int("DOCENT_RERANK_CANDIDATES", 30)
DOCENT_RERANK_TIMEOUT_S = env_float("DOCENT_RERANK_TIMEOUT_S", 5.0)
# With scores from the reranker, the best of them must also reach this for an answer (a cross-encoder
# reads question and passage together: a surer "not in your documents" than the embedding's cosine).
# Its scale is the model's (0..1 for bge-reranker and Cohere's); 0 leaves the decision to the cosine.
DOCENT_RERANK_MIN_SCORE = env_float("DOCENT_RERANK_MIN_SCORE", 0.0)
if DOCENT_RERANK_API not in ("cohere", "tei"):
    raise ValueError(f"DOCENT_RERANK_API={DOCENT_RERANK_API!r}: expected cohere or tei")
if DOCENT_RERANK_MODEL and not DOCENT_RERANK_URL:
    raise ValueError("DOCENT_RERANK_MODEL needs an endpoint: set DOCENT_RERANK_URL or OPENAI_BASE_URL")

# Where the Celery worker's processes write their metrics (PROMETHEUS_MULTIPROC_DIR, set for the
# worker by `make run`); /metrics on a web process of the same host reads them from there.
DOCENT_WORKER_METRICS_DIR = Path(
    os.environ.get("DOCENT_WORKER_METRICS_DIR") or DATA_DIR / "metrics" / "worker"
)

# DOCENT_LOG_FORMAT=json: one JSON object per line (ts, level, logger, message, request_id, exc).
DOCENT_LOG_FORMAT = os.environ.get("DOCENT_LOG_FORMAT", "plain").strip().lower()
if DOCENT_LOG_FORMAT not in ("plain", "json"):
    raise ValueError(f"DOCENT_LOG_FORMAT={DOCENT_LOG_FORMAT!r}: expected plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "assistant.logs.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
        "json": {"()": "assistant.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": DOCENT_LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("DOCENT_LOG_LEVEL", "INFO")},
    "loggers": {"pgserver": {"level": "WARNING"}, "uvicorn": {"level": "WARNING"}},
}
