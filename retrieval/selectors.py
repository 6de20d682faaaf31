"""Reads. Every object a user reaches goes through that user's team memberships."""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from django.db.models import Case, Count, Exists, Q, QuerySet, Value, When
from django.utils import timezone

from assistant import metrics

from .models import ApiKey, AuditEvent, Chunk, Collection, Document, Membership, Team, WebSource

log = logging.getLogger(__name__)


def teams_for_user(*, user) -> QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user, deleted_at__isnull=True)


def team_ids_for_user(*, user) -> set[int]:
    """The user's teams: a collection of one of them is the user's to change; one another team
    shares with them is read-only."""
    return set(teams_for_user(user=user).values_list("id", flat=True))


def team_find(*, key: int | str, among: QuerySet[Team]) -> Team | None:
    """The team of `among` that `key` names: an id (a number, or digits) or else a name."""
    lookup = {"id": int(key)} if isinstance(key, int) or str(key).isdigit() else {"name": str(key)}
    return among.filter(**lookup).first()


def teams_all() -> QuerySet[Team]:
    """Every live team, by name: those a team's admin may share a collection with."""
    return Team.objects.filter(deleted_at__isnull=True).order_by("name")


def _readable_collections(**membership) -> QuerySet[Collection]:
    """Collections of the teams the membership lookups (`user=`, `user_id=`...) name, and those
    shared with them; never a deleted one (the purge has yet to remove it). Subqueries, not joins:
    a collection reached through two teams is listed once."""
    teams = Membership.objects.filter(**membership).values("team_id")
    shared = Collection.shared_with.through.objects.filter(team_id__in=teams).values("collection_id")
    everyone = Q(shared_with_all=True) & Q(Exists(Membership.objects.filter(**membership)))
    return Collection.objects.filter(
        Q(team_id__in=teams) | Q(id__in=shared) | everyone, deleted_at__isnull=True
    )


def collection_readers(*, collection_ids: Sequence[int]) -> dict[int, tuple[set[int], bool]]:
    """For each collection: the teams that read it (its own and those it is shared with), and
    whether every team does. Deleted collections too: their readers are told they are gone."""
    readers = {
        cid: ({team_id}, everyone)
        for cid, team_id, everyone in Collection.objects.filter(id__in=collection_ids).values_list(
            "id", "team_id", "shared_with_all"
        )
    }
    shared = Collection.shared_with.through.objects.filter(collection_id__in=readers).values_list(
        "collection_id", "team_id"
    )
    for cid, team_id in shared:
        readers[cid][0].add(team_id)
    return readers


def collections_for_user(*, user, counted: bool = True) -> QuerySet[Collection]:
    """With `document_count` and `failed_count` unless `counted` is off (the counts join every
    document)."""
    if not user.is_authenticated:
        return Collection.objects.none()
    qs = _readable_collections(user=user).select_related("team")
    if counted:
        qs = qs.annotate(
            document_count=Count("documents", distinct=True),
            failed_count=Count(
                "documents", filter=Q(documents__status=Document.Status.FAILED), distinct=True
            ),
        )
    return qs.order_by("team__name", "name")


def team_members(*, team_id: int) -> QuerySet[Membership]:
    """A team's memberships with their users, admins first, then by name."""
    return (
        Membership.objects.filter(team_id=team_id, user__is_active=True)
        .select_related("user")
        .order_by("role", "user__username")
    )


def active_user(*, username: str):
    """The active user of that name, or None."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(username=username, is_active=True).first()


def users_reachable_by_email(*, email: str | None = None, ids: Sequence[int] | None = None) -> QuerySet:
    """Active accounts with an address, which a password reset link may go to, by address (in any
    case) or by id. One made without a password is among them: its first password is set this way."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    if email is not None:
        users = users.filter(email__iexact=email.strip())
    if ids is not None:
        users = users.filter(id__in=list(ids))
    return users.order_by("username")


def audit_events_for_team(*, team_id: int, action: str = "") -> QuerySet[AuditEvent]:
    """The audit log's events concerning the team, newest first; `action` narrows to one kind."""
    events = AuditEvent.objects.filter(team_id=team_id)
    if action:
        events = events.filter(action=action)
    return events.order_by("-at", "-id")


AUDIT_SETTLE_S = 60


def audit_events_since(*, since_id: int = 0, action: str = "") -> QuerySet[AuditEvent]:
    """Every audit event after `since_id` and at least `AUDIT_SETTLE_S` old, oldest first: ids grow
    with time, but a transaction may commit a lower id after a higher one is read."""
    settled = timezone.now() - timezone.timedelta(seconds=AUDIT_SETTLE_S)
    events = AuditEvent.objects.filter(id__gt=since_id, at__lte=settled)
    if action:
        events = events.filter(action=action)
    return events.order_by("id")


def team_ids_administered(*, user) -> set[int]:
    return set(
        Membership.objects.filter(user=user, role=Membership.Role.ADMIN).values_list("team_id", flat=True)
    )


def is_team_admin(*, user, team_id: int) -> bool:
    return team_id in team_ids_administered(user=user)


def collection_ids_for_user(*, user) -> list[int]:
    if not user.is_authenticated:
        return []
    return list(_readable_collections(user=user).values_list("id", flat=True))


def collection_ids_for_active_user(*, user_id: int) -> list[int]:
    """What a user may read, re-checked from the database (empty for a deactivated user)."""
    return list(_readable_collections(user_id=user_id, user__is_active=True).values_list("id", flat=True))


def collection_get(*, user, collection_id: int) -> Collection:
    """The collection if the user may read it; DoesNotExist otherwise (shown as 404, never 403)."""
    return _readable_collections(user=user).select_related("team").get(id=collection_id)


def documents_for_user(
    *, user, collection_id: int | None = None, name: str = "", status: str = "", source_id: int | None = None
) -> QuerySet[Document]:
    """The documents the user may read, newest first; `name` matches title or file name (any part,
    any case), `status` one of Document.Status, `source_id` a web source's pages."""
    qs = Document.objects.filter(collection__in=_readable_collections(user=user)).select_related(
        "collection", "uploaded_by"
    )
    if collection_id is not None:
        qs = qs.filter(collection_id=collection_id)
    if source_id is not None:
        qs = qs.filter(source_id=source_id)
    if name:
        qs = qs.filter(Q(title__icontains=name) | Q(original_name__icontains=name))
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def documents_by_name_first(documents: QuerySet[Document], name: str) -> QuerySet[Document]:
    """The documents whose title or file name begins with `name` first, then the rest, newest first
    in each: what someone typing a name's start looks for."""
    begins = Q(title__istartswith=name) | Q(original_name__istartswith=name)
    return documents.order_by(Case(When(begins, then=Value(0)), default=Value(1)), "-created_at", "-id")


def recent_documents_by_collection(
    *, user, per: int, collection_ids: Sequence[int] | None = None
) -> dict[int, list[Document]]:
    """Each readable collection's (or each of `collection_ids`') `per` newest documents, in one query
    (one per collection made the library page's cost grow with the number of collections)."""
    from django.db.models import F, Window
    from django.db.models.functions import RowNumber

    newest = Window(
        RowNumber(), partition_by=F("collection_id"), order_by=[F("created_at").desc(), F("id").desc()]
    )
    readable = documents_for_user(user=user)
    if collection_ids is not None:
        readable = readable.filter(collection_id__in=collection_ids)
    rows = readable.annotate(rank=newest).filter(rank__lte=per)
    out: dict[int, list[Document]] = {}
    for document in rows.order_by("collection_id", "rank"):
        out.setdefault(document.collection_id, []).append(document)
    return out


def document_get(*, user, document_id: int) -> Document:
    return documents_for_user(user=user).get(id=document_id)


def web_sources(*, collection: Collection) -> QuerySet[WebSource]:
    """The collection's web sources, each with the number of its documents."""
    return (
        WebSource.objects.filter(collection=collection)
        # A hash and validators a page, and the sealed header: not for a list the library polls.
        .defer("page_hashes", "page_validators", "header_sealed")
        .annotate(document_count=Count("documents"))
    )


def web_source_counts(*, collection_ids: Sequence[int]) -> dict[int, int]:
    rows = (
        WebSource.objects.filter(collection_id__in=collection_ids)
        .values_list("collection_id")
        .annotate(n=Count("id"))
    )
    return dict(rows.order_by())


def web_source_get(*, user, source_id: int) -> WebSource:
    """A web source of a collection the user may read; DoesNotExist otherwise."""
    return (
        WebSource.objects.filter(collection__in=_readable_collections(user=user))
        .select_related("collection__team")
        .annotate(document_count=Count("documents"))
        .get(id=source_id)
    )


def document_chunks(*, document: Document) -> QuerySet:
    """The passages a document was cut into, in reading order (as dicts, without their vectors)."""
    return (
        Chunk.objects.filter(document=document)
        .order_by("ordinal")
        .values("ordinal", "text", "page", "heading_path", "token_count")
    )


def document_chunk_ordinal(*, document: Document, chunk_id: int) -> int | None:
    """Where the chunk stands in the document (None when it is not one of its chunks, say after a
    re-ingestion)."""
    return Chunk.objects.filter(document=document, id=chunk_id).values_list("ordinal", flat=True).first()


def documents_readable(*, user, ids) -> bool:
    """Whether the user may read every document `ids` names."""
    wanted = set(ids)
    return documents_for_user(user=user).filter(id__in=wanted).count() == len(wanted)


def document_versions_older(*, document: Document) -> QuerySet[Document]:
    """The documents a new version replaces: same collection, same file name, uploaded before it."""
    return Document.objects.filter(
        collection_id=document.collection_id, original_name=document.original_name, id__lt=document.id
    )


def document_status_counts() -> dict[str, int]:
    return dict(Document.objects.order_by().values_list("status").annotate(n=Count("id")))


def collections_purging_count() -> int:
    """Deleted collections still holding rows (the purge's backlog; a stuck one stays counted)."""
    return Collection.objects.filter(deleted_at__isnull=False).count()


def stale_document_count(*, model_name: str) -> int:
    """Ready documents whose vectors another embedding model made (`manage.py reindex` fixes them)."""
    return Document.objects.filter(status=Document.Status.READY).exclude(embedding_model=model_name).count()


def api_keys_for_user(*, user) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).order_by("-created_at")


def collection_instructions(*, collection_ids: Sequence[int]) -> list[tuple[str, str]]:
    """(collection name, its team's instructions to the model) for those of the collections that have
    some, in the order given. The caller has the ids from passages the user may read."""
    found = (
        Collection.objects.filter(id__in=collection_ids, deleted_at__isnull=True)
        .exclude(instructions="")
        .values_list("id", "name", "instructions")
    )
    rows = {cid: (name, text) for cid, name, text in found}
    return [rows[i] for i in dict.fromkeys(collection_ids) if i in rows]


def api_key_user(*, raw: str):
    """The active user owning this API key, or None."""
    from .services import api_key_hash

    key = (
        ApiKey.objects.select_related("user")
        .filter(hashed_key=api_key_hash(raw), revoked_at__isnull=True)
        .first()
    )
    if key is None or not key.user.is_active:
        return None
    if key.last_used_at is None or (timezone.now() - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(id=key.id).update(last_used_at=timezone.now())
    return key.user


# Search

MODES = ("hybrid", "dense", "keyword")


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: int
    collection_id: int
    title: str
    text: str
    heading_path: str
    page: int | None
    score: float
    dense_rank: int | None
    keyword_rank: int | None
    dense_distance: float | None
    bm25: float | None
    language: str = "english"  # its collection's, as its keyword index reads it
    url: str = ""  # the web page its document was read from, if it was
    rerank_score: float | None = None  # the reranker's, when one re-ordered the candidates


# One statement: the permission filter, both retrievers and the fusion run in a single round trip.
# `acc` is every collection the user's teams may read (narrowed to the requested ones); nothing
# outside it is ever scored. Dense search is exact when the accessible set is small, HNSW otherwise,
# and an exact pass fills in when a filtered HNSW scan returned too few rows (pgvector < 0.8 stops
# after ef_search candidates, filtered or not). BM25 reads the postings table; its statistics are
# those of the accessible collections (document frequencies from retrieval_term; postings are
# keyed by a 64-bit hash of the term, see migration 0005).
_ACC = """
acc AS MATERIALIZED (
    SELECT c.id, c.indexed_chunks, c.indexed_terms, c.indexed_language AS language FROM retrieval_collection c
    WHERE (c.team_id IN (SELECT m.team_id FROM retrieval_membership m WHERE m.user_id = %(user_id)s)
           OR c.id IN (SELECT s.collection_id FROM retrieval_collection_shared_with s
                       JOIN retrieval_membership m ON m.team_id = s.team_id WHERE m.user_id = %(user_id)s)
           OR (c.shared_with_all AND EXISTS (SELECT 1 FROM retrieval_membership m WHERE m.user_id = %(user_id)s)))
      AND c.deleted_at IS NULL
      AND (%(only)s::bigint[] IS NULL OR c.id = ANY(%(only)s::bigint[]))
      AND (%(docs)s::bigint[] IS NULL
           OR c.id IN (SELECT d.collection_id FROM retrieval_document d WHERE d.id = ANY(%(docs)s::bigint[])))
),
st AS MATERIALIZED (
    SELECT coalesce(sum(indexed_chunks), 0)::float8 AS n,
           greatest(coalesce(sum(indexed_terms), 0)::float8 / greatest(coalesce(sum(indexed_chunks), 0), 1), 1) AS avgdl,
           coalesce(array_agg(id), '{}') AS ids
    FROM acc
)"""

# Narrowed to documents: their chunks (in readable collections only, through `st`), searched exactly.
_DOCS = """,
dk AS MATERIALIZED (
    SELECT ch.id FROM retrieval_chunk ch
    WHERE ch.document_id = ANY(%(docs)s::bigint[]) AND ch.collection_id = ANY((SELECT ids FROM st)::bigint[])
)"""

_DENSE_DOCS = """,
dense AS (
    SELECT id, d, row_number() OVER (ORDER BY d, id) AS r FROM (
        SELECT ch.id, ch.embedding <=> %(vec)s AS d FROM retrieval_chunk ch JOIN dk ON dk.id = ch.id
        WHERE ch.embedding_model = %(model)s
        ORDER BY (ch.embedding <=> %(vec)s) + 0, ch.id LIMIT %(depth)s
    ) x
)"""

_DENSE = """,
dense_exact AS (
    SELECT ch.id, ch.embedding <=> %(vec)s AS d FROM retrieval_chunk ch
    WHERE ch.collection_id = ANY((SELECT ids FROM st)::bigint[]) AND ch.embedding_model = %(model)s
      AND (SELECT n FROM st) <= %(exact_max)s
    ORDER BY (ch.embedding <=> %(vec)s) + 0, ch.id LIMIT %(depth)s
),
dense_ann AS MATERIALIZED (
    SELECT ch.id, ch.embedding <=> %(vec)s AS d FROM retrieval_chunk ch
    WHERE ch.collection_id = ANY((SELECT ids FROM st)::bigint[]) AND ch.embedding_model = %(model)s
      AND (SELECT n FROM st) > %(exact_max)s
    ORDER BY ch.embedding <=> %(vec)s LIMIT %(depth)s
),
dense_fill AS MATERIALIZED (
    SELECT ch.id, ch.embedding <=> %(vec)s AS d FROM retrieval_chunk ch
    WHERE ch.collection_id = ANY((SELECT ids FROM st)::bigint[]) AND ch.embedding_model = %(model)s
      AND (SELECT n FROM st) > %(exact_max)s
      AND (SELECT count(*) FROM dense_ann) < least(%(depth)s, (SELECT n FROM st))
    ORDER BY (ch.embedding <=> %(vec)s) + 0, ch.id LIMIT %(depth)s
),
dense AS (
    SELECT id, d, row_number() OVER (ORDER BY d, id) AS r FROM (
        SELECT id, d FROM dense_exact
        UNION ALL SELECT id, d FROM dense_fill
        UNION ALL SELECT id, d FROM dense_ann WHERE NOT EXISTS (SELECT 1 FROM dense_fill)
    ) x
)"""

_KEYWORD = """,
-- The query read in each language of the readable collections (each collection's postings hold
-- the stems of its own language).
q AS (
    SELECT DISTINCT unnest(tsvector_to_array(docent_keywords(%(query)s, l.language::regconfig))) AS term
    FROM (SELECT DISTINCT language FROM acc) l
),
-- One index probe per query term: the planner cannot count the terms of a query read in languages
-- from a table, and would otherwise hash the whole term table (10x slower at 100k chunks).
df AS (
    SELECT q.term, d.df FROM q CROSS JOIN LATERAL (
        SELECT sum(t.df)::float8 AS df FROM retrieval_term t
        WHERE t.term = q.term AND t.collection_id = ANY((SELECT ids FROM st)::bigint[])
    ) d
    WHERE d.df IS NOT NULL
),
w AS MATERIALIZED (
    -- Per term: idf * (k1 + 1); per query: the length normalisation k1 * (1 - b + b * dl / avgdl)
    -- as c0 + c1 * dl, so each posting costs one multiply-add and a division.
    SELECT hashtextextended(df.term, 0) AS term_hash,
           ln(1 + ((SELECT n FROM st) - df.df + 0.5) / (df.df + 0.5)) * (%(k1)s::float8 + 1) AS wt,
           %(k1)s::float8 * (1 - %(b)s::float8) AS c0,
           %(k1)s::float8 * %(b)s::float8 / (SELECT avgdl FROM st) AS c1
    FROM df
),
kw AS (
    -- Aggregated one collection at a time: the same sums as one aggregate over every readable
    -- posting, but each hash table holds one collection's chunks and stays in cache. One top-N sort
    -- over all of them then costs less than a sort per collection (BM25 part at 100k chunks in 100
    -- collections, p95: 39 ms as one aggregate, 32 with a top-N per collection, 28 like this).
    SELECT x.id, x.s FROM acc CROSS JOIN LATERAL (
        SELECT p.chunk_id AS id, sum(w.wt * p.tf / (p.tf + w.c0 + w.c1 * p.dl)) AS s
        FROM w JOIN retrieval_posting p ON p.term_hash = w.term_hash AND p.collection_id = acc.id
        GROUP BY p.chunk_id
    ) x
    ORDER BY x.s DESC, x.id LIMIT %(depth)s
),
keyword AS (SELECT id, s, row_number() OVER (ORDER BY s DESC, id) AS r FROM kw)"""

# Each mode's candidates as `pool`; `fused` then keeps one chunk per passage (heading path and text,
# by content hash: the same file in two collections, or a version kept beside the next) so that
# copies do not take the places of other passages, and the best k of those. Looking up the hashes
# of the best 2k candidates only is exact whenever k distinct passages are among them (any other
# candidate ranks below all k); only when copies fill more than k of those places are all looked up.
_FUSE = {
    "hybrid": """,
pool AS (
    SELECT coalesce(dense.id, keyword.id) AS id,
           coalesce(1.0 / (%(rrf_k)s + dense.r), 0) + coalesce(1.0 / (%(rrf_k)s + keyword.r), 0) AS score,
           dense.r AS dense_rank, keyword.r AS keyword_rank, dense.d AS d, keyword.s AS s
    -- BM25 hits under a share of the best one's score hold only the query's commonest words (the
    -- product's name, in every document of its manual): ranked, they would still add to chunks the
    -- dense side ranks, and outrank the one chunk holding the rare word the question is about.
    FROM dense FULL OUTER JOIN (
        SELECT * FROM keyword WHERE s >= %(keyword_floor)s * (SELECT max(s) FROM kw)
    ) keyword ON keyword.id = dense.id
)""",
    "dense": """,
pool AS (SELECT id, 1 - d AS score, r AS dense_rank, NULL::bigint AS keyword_rank, d, NULL::float8 AS s
         FROM dense)""",
    "keyword": """,
pool AS (SELECT id, s AS score, NULL::bigint AS dense_rank, r AS keyword_rank, NULL::float8 AS d, s
         FROM keyword)""",
}

_DISTINCT = """,
top AS MATERIALIZED (
    SELECT id, score, dense_rank, keyword_rank, d, s,
           row_number() OVER (PARTITION BY hash ORDER BY score DESC, id) AS nth
    FROM (SELECT p.*, ch.content_hash AS hash
          FROM (SELECT * FROM pool ORDER BY score DESC, id LIMIT 2 * %(k)s) p
          JOIN retrieval_chunk ch ON ch.id = p.id) x
),
fused AS (
    SELECT id, score, dense_rank, keyword_rank, d, s FROM top
    WHERE nth = 1 AND ((SELECT count(*) FROM top WHERE nth = 1) >= %(k)s
                       OR (SELECT count(*) FROM pool) <= 2 * %(k)s)
    UNION ALL
    SELECT id, score, dense_rank, keyword_rank, d, s FROM (
        SELECT pool.*, row_number() OVER (PARTITION BY ch.content_hash ORDER BY pool.score DESC, pool.id) AS nth
        FROM pool JOIN retrieval_chunk ch ON ch.id = pool.id
    ) x
    WHERE nth = 1 AND NOT ((SELECT count(*) FROM top WHERE nth = 1) >= %(k)s
                           OR (SELECT count(*) FROM pool) <= 2 * %(k)s)
    ORDER BY score DESC, id LIMIT %(k)s
)"""

_SELECT = """
SELECT f.id, ch.document_id, ch.collection_id, doc.title, ch.text, ch.heading_path, ch.page,
       f.score::float8, f.dense_rank, f.keyword_rank, f.d::float8, f.s::float8, acc.language, doc.source_url
FROM fused f JOIN retrieval_chunk ch ON ch.id = f.id JOIN retrieval_document doc ON doc.id = ch.document_id
JOIN acc ON acc.id = ch.collection_id
ORDER BY f.score DESC, f.id
"""


_POSTINGS = "FROM w JOIN retrieval_posting p ON p.term_hash = w.term_hash AND p.collection_id = acc.id"


def search_sql(mode: str, *, by_document: bool = False) -> str:
    parts = ["WITH", _ACC]
    if by_document:
        parts.append(_DOCS)
    if mode in ("hybrid", "dense"):
        parts.append(_DENSE_DOCS if by_document else _DENSE)
    if mode in ("hybrid", "keyword"):
        parts.append(
            _KEYWORD.replace(_POSTINGS, _POSTINGS + " JOIN dk ON dk.id = p.chunk_id")
            if by_document
            else _KEYWORD
        )
    parts += [_FUSE[mode], _DISTINCT, _SELECT]
    return "".join(parts)


_SERVER: dict[str, object] = {}
_SIZES: dict[str, object] = {"at": 0.0}


def _ef_search_hint(user_id: int, only: list[int] | None, depth: int, default: int) -> int:
    """ef_search for the HNSW branch, raised by how selective the permission filter is.

    pgvector < 0.8 filters after taking ef_search candidates, so a user who may read 20% of the
    chunks needs about 5x more. The hint reads sizes cached for a few seconds: it tunes speed only;
    the SQL itself enforces permissions and fills in exactly when the hint fell short.
    """
    from .models import Collection, Membership

    now = time.monotonic()
    if now - float(_SIZES["at"]) > 10:
        # A deleted collection's chunks stay in the index until purged: they count in the total only.
        # Per collection: the teams that read it (its own and those it is shared with; None once
        # deleted, "every" when every team does) and its chunks.
        shared: dict[int, set[int]] = {}
        for c, t in Collection.shared_with.through.objects.values_list("collection_id", "team_id"):
            shared.setdefault(c, set()).add(t)
        _SIZES["collections"] = {
            c: (None if gone else "every" if everyone else {t, *shared.get(c, ())}, n)
            for c, t, n, gone, everyone in Collection.objects.values_list(
                "id", "team_id", "indexed_chunks", "deleted_at", "shared_with_all"
            )
        }
        _SIZES["teams"] = {}
        _SIZES["at"] = now
    teams_by_user = _SIZES["teams"]
    if user_id not in teams_by_user:
        teams_by_user[user_id] = set(
            Membership.objects.filter(user_id=user_id).values_list("team_id", flat=True)
        )
    collections, teams = _SIZES["collections"], teams_by_user[user_id]
    total = sum(n for _, n in collections.values()) or 1
    wanted = set(only) if only is not None else None
    mine = sum(
        n
        for c, (readers, n) in collections.items()
        if readers is not None
        and bool(teams if readers == "every" else readers & teams)
        and (wanted is None or c in wanted)
    )
    selectivity = max(mine / total, 1e-3)
    return int(min(1000, max(default, depth, depth * 1.3 / selectivity)))


def _pgvector_iterative(cursor) -> bool:
    """pgvector >= 0.8 can continue a filtered HNSW scan until enough rows pass the filter."""
    if "iterative" not in _SERVER:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
        version = tuple(int(p) for p in (row[0] if row else "0").split(".")[:2])
        _SERVER["iterative"] = version >= (0, 8)
    return bool(_SERVER["iterative"])


@functools.lru_cache(maxsize=512)
def _query_vector(model_name: str, text: str):
    from .embeddings import get_embedder

    return get_embedder().embed_query(text)


def search(
    *,
    user,
    query: str,
    collection_ids: list[int] | None = None,
    document_ids: list[int] | None = None,
    k: int | None = None,
    mode: str = "hybrid",
    depth: int | None = None,
    rerank: bool = True,
) -> list[SearchHit]:
    """Hybrid (dense + BM25, fused by reciprocal rank) search over the chunks `user` may read,
    narrowed to `collection_ids` and to `document_ids` when given (a document the user may not read
    narrows to nothing; BM25 statistics are then those of the documents' collections). With a
    reranker configured (and `rerank`), the best `DOCENT_RERANK_CANDIDATES` are re-scored by it.

    Embeds the query (cached), then runs one SQL statement. Call from sync code; async callers use
    `asearch`, which keeps the embedding, the query and the reranker's call off the event loop.
    """
    from django.conf import settings

    from .embeddings import get_embedder
    from .reranking import get_reranker
    from .services import _raw_connection

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    query = query.strip()
    k = max(1, min(k or settings.DOCENT_SEARCH_K, 1000))
    reranker = get_reranker() if rerank else None
    wanted = k
    if reranker is not None:
        k = max(k, settings.DOCENT_RERANK_CANDIDATES)
    depth = max(k, depth or settings.DOCENT_CANDIDATES)
    if not query or not getattr(user, "is_authenticated", False):
        return []
    started = time.perf_counter()
    embedder = get_embedder()
    params = {
        "user_id": user.id,
        "only": list(collection_ids) if collection_ids is not None else None,
        "docs": list(document_ids) if document_ids is not None else None,
        "query": query,
        "model": embedder.model_name,
        "vec": _query_vector(embedder.model_name, query) if mode != "keyword" else None,
        "exact_max": settings.DOCENT_EXACT_SEARCH_MAX,
        "depth": depth,
        "k": k,
        "k1": settings.DOCENT_BM25_K1,
        "b": settings.DOCENT_BM25_B,
        "rrf_k": settings.DOCENT_RRF_K,
        "keyword_floor": settings.DOCENT_KEYWORD_FLOOR,
    }
    raw = _raw_connection()
    # Server-side binding: the query vector travels as a binary parameter instead of 384 floats
    # spelled out in the statement's text for the server to parse (about 2 ms a search at 100k).
    with psycopg.Cursor(raw) as cursor:
        iterative = _pgvector_iterative(cursor) if mode != "keyword" else False
        # Sent in one pipeline with the search: a single round trip.
        with raw.pipeline():
            # No JIT: on servers built with it, compiling costs tens of ms per statement, which a
            # search never wins back; from about a million chunks its estimated cost (27,000 at
            # 100k) would pass the default jit_above_cost of 100,000.
            cursor.execute("SELECT set_config('jit', 'off', false)")
            if mode != "keyword" and document_ids is None:  # documents are searched exactly
                ef = _ef_search_hint(user.id, params["only"], depth, settings.DOCENT_HNSW_EF_SEARCH)
                cursor.execute("SELECT set_config('hnsw.ef_search', %s, false)", [str(ef)])
                if iterative:
                    cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', false)")
            cursor.execute(search_sql(mode, by_document=document_ids is not None), params)
        rows = cursor.fetchall()
    metrics.SEARCH_SECONDS.labels(mode=mode).observe(time.perf_counter() - started)
    hits = [SearchHit(*row) for row in rows]
    if reranker is not None and len(hits) > 1:
        n = settings.DOCENT_RERANK_CANDIDATES
        hits = _reranked(reranker, query, hits[:n]) + hits[n:]
    return hits[:wanted]


def _reranked(reranker, query: str, hits: list[SearchHit]) -> list[SearchHit]:
    """The hits in the reranker's order (ties in the fused order); the fused order when it fails."""
    from .chunking import passage_input
    from .reranking import RerankError

    started = time.perf_counter()
    try:
        scores = reranker.rerank(query, [passage_input(h.heading_path, h.text) for h in hits])
    except RerankError as exc:
        log.warning("reranker %s failed, fused order kept: %s", reranker.model_name, exc)
        metrics.RERANK_FAILURES.labels(reason=exc.reason).inc()
        return hits
    metrics.RERANK_SECONDS.observe(time.perf_counter() - started)
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    return [dataclasses.replace(hits[i], rerank_score=scores[i]) for i in order]


async def asearch(**kwargs) -> list[SearchHit]:
    """`search` for async callers: embedding and SQL run in a worker thread, never on the event loop."""
    from channels.db import DatabaseSyncToAsync

    # Not thread-sensitive: searches run in parallel pool threads, each closing its connection after.
    return await DatabaseSyncToAsync(search, thread_sensitive=False)(**kwargs)


def keyword_terms(*, text: str, languages: Sequence[str]) -> dict[str, frozenset[str]]:
    """The text's keyword terms in each language, as keyword search reads it (stemmed, without the
    language's stop words, identifiers whole): for the offline answerer's reading of a question."""
    from django.db import connection

    if not languages:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT l, tsvector_to_array(docent_keywords(%s, l::regconfig)) FROM unnest(%s::text[]) l",
            [text, sorted(set(languages))],
        )
        return {language: frozenset(found or []) for language, found in cursor.fetchall()}


def query_terms(*, query: str, collection_ids: Sequence[int] = ()) -> list[str]:
    """The query's keyword terms as the index sees them (stemmed lexemes, in the languages of the
    given collections; English without any), for highlighting."""
    languages = set(
        Collection.objects.filter(id__in=collection_ids).values_list("indexed_language", flat=True)
    )
    found = keyword_terms(text=query, languages=sorted(languages or {"english"}))
    return sorted(set().union(*found.values()))
