import uuid

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.db.models.lookups import LessThanOrEqual
from pgvector.django import HnswIndex, VectorField


class Team(models.Model):
    name = models.CharField(max_length=120)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when deleted: its members are gone and its collections deleted at once; the last of their
    # purges removes the row.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            # A deleted team's name is free at once, while its collections are still being purged.
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(deleted_at__isnull=True), name="team_unique_live_name"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        ADMIN = "admin", "Admin"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    # Granted by the single sign-on provider's groups (DOCENT_OIDC_GROUPS_CLAIM): a later sign-in
    # without the group takes it away. Memberships made by hand are never touched by sign-ins.
    from_sso = models.BooleanField(
        "from single sign-on",
        default=False,
        help_text="Added from the sign-in provider's groups, and removed with them",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_unique_team_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


STARTER_QUESTIONS_MAX = 4
STARTER_QUESTION_MAX_CHARS = 200
INSTRUCTIONS_MAX_CHARS = 2000


# PostgreSQL's own text search configurations (a Snowball stemmer and stop words each; "simple" only
# folds case): the language a collection's keyword index is built in, and its queries read in.
SEARCH_LANGUAGES = (
    "arabic", "armenian", "basque", "catalan", "danish", "dutch", "english", "finnish", "french",
    "german", "greek", "hindi", "hungarian", "indonesian", "irish", "italian", "lithuanian", "nepali",
    "norwegian", "portuguese", "romanian", "russian", "serbian", "simple", "spanish", "swedish",
    "tamil", "turkish", "yiddish",
)  # fmt: skip


class Collection(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="collections")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # Its documents' language, for keyword search: stems ("Häuser" finds "Haus" in German) and stop
    # words. A change builds the collection's keyword index again (services.collection_rekey), and
    # `indexed_language` names the language the index is in until then: insert and query use that
    # one, so search stays consistent while the rebuild runs.
    language = models.CharField(
        max_length=20,
        default="english",
        choices=[(name, name.capitalize()) for name in SEARCH_LANGUAGES],
        help_text="For keyword search: how words are stemmed and which are stop words.",
    )
    indexed_language = models.CharField(max_length=20, default="english", editable=False)
    # The team's instructions to the model for answers drawn from this collection ("Answer in
    # German", "Name the policy's section"); Docent's own rules come first.
    instructions = models.TextField(blank=True, max_length=INSTRUCTIONS_MAX_CHARS)
    # Questions the team suggests asking of it, offered on the chat page before a conversation
    # starts (at most STARTER_QUESTIONS_MAX, each at most STARTER_QUESTION_MAX_CHARS).
    starter_questions = models.JSONField(default=list, blank=True)
    # Other teams whose members may read it (search, ask, open its documents); writing (uploads,
    # deletions, its settings) stays with its own team.
    shared_with = models.ManyToManyField(
        Team,
        blank=True,
        related_name="shared_collections",
        help_text="Teams that may read this collection's documents; only its own team changes them.",
    )
    # Every team's members may read it (a company handbook), teams made later included.
    shared_with_all = models.BooleanField(
        default=False, help_text="Every team may read this collection's documents, teams made later too."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    # BM25 collection statistics, kept current by the chunk insert and delete paths.
    indexed_chunks = models.PositiveBigIntegerField(default=0, editable=False)
    indexed_terms = models.PositiveBigIntegerField(default=0, editable=False)
    # Set when deleted: from then on no list, route or search reaches it, while a task purges its
    # documents in batches (a large collection takes minutes) and then the row itself.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["team__name", "name"]
        constraints = [
            # A deleted collection's name is free at once, while its purge may still be running.
            models.UniqueConstraint(
                fields=["team", "name"],
                condition=models.Q(deleted_at__isnull=True),
                name="collection_unique_live_team_name",
            ),
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("instructions"), INSTRUCTIONS_MAX_CHARS),
                name="collection_instructions_length",
            ),
            # The keyword index casts it to regconfig: only the languages PostgreSQL ships.
            models.CheckConstraint(
                condition=models.Q(language__in=SEARCH_LANGUAGES, indexed_language__in=SEARCH_LANGUAGES),
                name="collection_language_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team.name}/{self.name}"


def _upload_path(instance: "Document", filename: str) -> str:
    # The user's file name is metadata only; the stored name is generated.
    return f"documents/{uuid.uuid4().hex}"


class WebSource(models.Model):
    """A web page, a site's pages under an address, or a sitemap's pages, kept in a collection as
    documents and fetched again on a schedule (`services.web_source_sync`)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SYNCING = "syncing", "Reading"
        OK = "ok", "Up to date"
        FAILED = "failed", "Failed"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="web_sources")
    url = models.URLField(max_length=2000)
    crawl = models.BooleanField(
        default=False,
        help_text="Also read the pages it links to under the same address (same site, same folder).",
    )
    max_pages = models.PositiveIntegerField(default=50)
    refresh_hours = models.PositiveIntegerField(
        default=24,
        help_text="Read again this often (pages changed are ingested anew, pages gone deleted); 0: never.",
    )
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True, default="")
    pages = models.PositiveIntegerField(default=0, help_text="Pages found at the last reading.")
    skipped = models.JSONField(
        default=list, blank=True, help_text="Pages left out at the last reading, and why."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    # A reading goes in slices (each a task): `reading` names the one under way, `started_at` is
    # when its last slice began (a worker lost mid-slice leaves it old, and the schedule takes the
    # source again), `state` is where it stands (a lost slice's successor goes on from there).
    started_at = models.DateTimeField(null=True, blank=True)
    reading = models.CharField(max_length=32, blank=True, default="", editable=False)
    state = models.JSONField(default=dict, blank=True, editable=False)
    # Each page's text as last ingested (a hash, by address): a page whose bytes changed but not its
    # text (a nonce, a build id in a script) is not ingested again.
    page_hashes = models.JSONField(default=dict, blank=True, editable=False)
    # The validators (ETag, Last-Modified) a page came with, by address, for pages whose links the
    # reading does not need: asked for again conditionally, an unchanged one answers 304, no body.
    page_validators = models.JSONField(default=dict, blank=True, editable=False)
    # A header sent with each request to the source's own site (scheme, host and port), never
    # elsewhere: an intranet wiki's token or session cookie. Its value is kept sealed (`sealed`)
    # and never shown again.
    header_name = models.CharField(max_length=100, blank=True, default="")
    header_sealed = models.TextField(blank=True, default="", editable=False)
    failures = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Readings failed in a row (each waits twice as long, up to the schedule).",
    )
    next_sync_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["url"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "url"], name="websource_unique_collection_url"),
        ]
        indexes = [models.Index(fields=["next_sync_at"], name="websource_next_sync")]

    def __str__(self) -> str:
        return self.url


class Document(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    class Kind(models.TextChoices):
        PDF = "pdf", "PDF"
        DOCX = "docx", "Word (DOCX)"
        PPTX = "pptx", "PowerPoint (PPTX)"
        XLSX = "xlsx", "Excel (XLSX)"
        MARKDOWN = "markdown", "Markdown"
        HTML = "html", "HTML"
        TEXT = "text", "Plain text"
        CSV = "csv", "CSV"
        EMAIL = "email", "Email (EML)"
        EPUB = "epub", "EPUB"
        ODT = "odt", "OpenDocument text (ODT)"
        IMAGE = "image", "Image (read by OCR)"
        CODE = "code", "Source code or configuration"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    original_name = models.CharField(max_length=300)
    file = models.FileField(upload_to=_upload_path, max_length=200)
    content_hash = models.CharField(max_length=64)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    size = models.PositiveBigIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=200, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched while a worker makes progress; the sweep re-queues documents whose heartbeat went quiet.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    replace_older = models.BooleanField(
        default=False,
        help_text="A new version: once it is ready, older documents of its collection with the same "
        "file name are deleted (until then they are still searched; if it fails, they stay).",
    )
    # A page read from the web: its source (the pages of a source removed go with it) and address.
    source = models.ForeignKey(
        WebSource, null=True, blank=True, on_delete=models.SET_NULL, related_name="documents"
    )
    source_url = models.URLField(max_length=2000, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["collection", "content_hash"], name="document_collection_hash"),
            models.Index(
                fields=["status", "heartbeat_at"],
                name="document_unfinished",
                condition=Q(status__in=["queued", "processing"]),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="document_progress_0_1"
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    # No index of their own: (document, ordinal)'s unique index and chunk_collection serve them, and
    # every index costs each inserted chunk.
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    # Denormalised so the permission filter and per-collection statistics need no join.
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+", db_index=False)
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    token_count = models.PositiveIntegerField()
    page = models.PositiveIntegerField(null=True, blank=True)
    heading_path = models.TextField(blank=True, default="")
    content_hash = models.CharField(max_length=64)
    embedding = VectorField(dimensions=settings.DOCENT_EMBEDDING_DIMENSIONS)
    embedding_model = models.CharField(max_length=200)
    # docent_keywords(heading_path || ' ' || text, language) (the collection's stems, snake_case
    # identifiers whole, Chinese, Japanese and Korean as pairs of characters; migrations 0014, 0018
    # and 0019), filled by the insert path with the BM25 postings (retrieval_posting) derived
    # from it; term_count is the BM25 document length.
    search_vector = SearchVectorField(null=True, editable=False)
    term_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_document_ordinal"),
        ]
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["content_hash", "embedding_model"], name="chunk_hash_model"),
            models.Index(fields=["collection"], name="chunk_collection"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


class SsoIdentity(models.Model):
    """A person's account at the single sign-on provider (its issuer and their subject there, which
    never changes, unlike an email address), linked to a Docent account at their first sign-in."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "single sign-on identity"
        verbose_name_plural = "single sign-on identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="ssoidentity_unique_issuer_subject")
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.issuer}"


class SsoSession(models.Model):
    """A Docent session begun with the provider, so that the provider's back-channel logout for
    that person (or that one session of theirs at the provider, `sid`) can end it."""

    identity = models.ForeignKey(SsoIdentity, on_delete=models.CASCADE, related_name="sessions")
    sid = models.CharField(max_length=255, blank=True)
    session_key = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["sid"], name="ssosession_sid")]

    def __str__(self) -> str:
        return f"{self.identity} session {self.sid or '?'}"


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=12, help_text="First characters of the key, to tell keys apart")
    hashed_key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class AuditEvent(models.Model):
    """Who did what, when, from where: the changes that decide who reads what (teams, members,
    collections and their shares, documents deleted, web sources, API keys, shared conversations)
    and sign-ins. Written by the services (`retrieval.audit.record`), read in Django admin and by a
    team's admins for their team; kept `DOCENT_AUDIT_RETENTION_DAYS`."""

    at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept when the account is deleted; "" for the system (the worker, a management command).
    actor_name = models.CharField(max_length=150, blank=True, default="")
    action = models.CharField(max_length=60)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    target_type = models.CharField(max_length=40, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    target = models.CharField(max_length=300, blank=True, default="", help_text="What it was, as named then")
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["-at"], name="auditevent_at"),
            models.Index(fields=["team", "-at"], name="auditevent_team_at"),
            models.Index(fields=["action", "-at"], name="auditevent_action_at"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_name or 'system'} {self.action} {self.target}".strip()
