"""REST endpoints for collections, documents and search: parse, check permission, delegate."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Literal

from django.db import IntegrityError, transaction
from django.http import Http404, HttpResponse
from ninja import Field, File, Form, Query, Router, Schema, Status
from ninja.errors import HttpError
from ninja.files import UploadedFile

from . import audit, downloads, limits, selectors, services, web
from .auth import api_auth
from .models import Collection, Document, Membership, WebSource

MAX_OFFSET = 2**31  # past PostgreSQL's bigint an OFFSET fails; no list here comes near this
NAME_MAX = Collection._meta.get_field("name").max_length

router = Router(auth=api_auth, tags=["knowledge"])


class TeamRef(Schema):
    id: int
    name: str


class CollectionOut(Schema):
    id: int
    name: str
    team: str
    team_id: int
    description: str
    instructions: str
    # Questions its team suggests asking of it (the chat page offers them before a conversation).
    starter_questions: list[str]
    # The documents' language, for keyword search (stems, stop words); `indexed_language` is the one
    # the keyword index is in, which differs only while a change of language is being applied.
    language: str
    indexed_language: str
    documents: int
    # Whether the caller may upload to it and delete from it: a collection shared with one of the
    # caller's teams by another team is read-only to them.
    writable: bool
    # The other teams that may read it, and whether every team may (shown to its own team's members
    # only).
    shared_with: list[TeamRef]
    shared_with_all: bool


class CollectionIn(Schema):
    name: str = Field(max_length=NAME_MAX)
    team: int | str
    description: str = ""
    language: str = "english"


class CollectionPatch(Schema):
    name: str | None = Field(None, max_length=NAME_MAX)
    description: str | None = None
    instructions: str | None = None
    starter_questions: list[str] | None = None
    language: str | None = None
    # The teams (ids or names) that may read it besides its own; [] for none. `shared_with_all`:
    # every team, teams made later too.
    shared_with: list[int | str] | None = None
    shared_with_all: bool | None = None


class DocumentPatch(Schema):
    title: str = Field(..., max_length=services.TITLE_MAX)


class DocumentOut(Schema):
    id: int
    uploaded_by: str | None = None
    title: str
    status: str
    progress: float
    error: str | None
    chunks: int
    collection_id: int
    kind: str
    size: int
    original_name: str
    duplicate: bool = False
    created_at: datetime
    url: str | None = Field(None, description="The web page it was read from (a web source's)")
    source_id: int | None = Field(None, description="The web source it was read from")


class ChunkOut(Schema):
    ordinal: int
    text: str
    page: int | None
    heading_path: str
    token_count: int


class UploadOut(Schema):
    id: int
    status: str
    duplicate: bool
    # With replace: the documents this one deletes once it is ready (older uploads of the same name).
    replaces: list[int] = []


class ErrorBody(Schema):
    code: str
    message: str


class ErrorOut(Schema):
    """Every error: 429 ones come with a Retry-After header (seconds)."""

    error: ErrorBody


def _collection_out(c: Collection, team_ids: set[int]) -> dict:
    """As the caller sees it: `team_ids` are the caller's teams (their collections are theirs to
    change; one shared with them is not)."""
    mine = c.team_id in team_ids
    return {
        "id": c.id,
        "name": c.name,
        "team": c.team.name,
        "team_id": c.team_id,
        "description": c.description,
        "instructions": c.instructions,
        "starter_questions": c.starter_questions,
        "language": c.language,
        "indexed_language": c.indexed_language,
        "documents": getattr(c, "document_count", 0),
        "writable": mine,
        "shared_with": [{"id": t.id, "name": t.name} for t in c.shared_with.all()] if mine else [],
        "shared_with_all": c.shared_with_all and mine,
    }


def document_out(d: Document, duplicate: bool = False) -> dict:
    return {
        "id": d.id,
        "title": d.title,
        "status": d.status,
        "progress": round(d.progress, 3),
        "error": d.error or None,
        "chunks": d.chunk_count,
        "collection_id": d.collection_id,
        "kind": d.kind,
        "size": d.size,
        "original_name": d.original_name,
        "duplicate": duplicate,
        "created_at": d.created_at,
        "url": d.source_url or None,
        "source_id": d.source_id,
        # Who uploaded it (null for a web source's page, a script's, or an account since deleted).
        "uploaded_by": d.uploaded_by.get_username() if d.uploaded_by_id and not d.source_id else None,
    }


def _collection_or_404(request, collection_id: int) -> Collection:
    try:
        return selectors.collection_get(user=request.auth, collection_id=collection_id)
    except Collection.DoesNotExist:
        raise Http404("no such collection") from None


def _document_or_404(request, document_id: int) -> Document:
    try:
        return selectors.document_get(user=request.auth, document_id=document_id)
    except Document.DoesNotExist:
        raise Http404("no such document") from None


@contextlib.contextmanager
def _collection_refusals(team, name: str | None):
    """A collection service's refusals as API errors: 400 for a value it refuses (an unknown
    language, instructions too long), 409 for a name the team has already."""
    try:
        yield
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None
    except IntegrityError:
        raise HttpError(409, f"team {team.name} already has a collection named {name!r}") from None


@router.get("/collections", response=list[CollectionOut])
def list_collections(request):
    team_ids = selectors.team_ids_for_user(user=request.auth)
    collections = selectors.collections_for_user(user=request.auth).prefetch_related("shared_with")
    return [_collection_out(c, team_ids) for c in collections]


@router.post("/collections", response={201: CollectionOut})
def create_collection(request, payload: CollectionIn):
    team = selectors.team_find(key=payload.team, among=selectors.teams_for_user(user=request.auth))
    if team is None:
        raise Http404("no such team")
    if not payload.name.strip():
        raise HttpError(400, "a collection needs a name")
    with _collection_refusals(team, payload.name):
        collection = services.collection_create(
            team=team,
            name=payload.name,
            user=request.auth,
            description=payload.description,
            language=payload.language,
        )
    collection.document_count = 0
    return Status(201, _collection_out(collection, {team.id}))


def _counted_collection_or_404(request, collection_id: int) -> Collection:
    """The collection with its document count, as the collection list gives it."""
    try:
        return selectors.collections_for_user(user=request.auth).get(id=collection_id)
    except Collection.DoesNotExist:
        raise Http404("no such collection") from None


def _writable_collection_or_404(request, collection_id: int) -> Collection:
    """A collection the caller may change the documents of: 404 when they may not read it, 403
    when another team shares it with theirs to read only."""
    collection = _collection_or_404(request, collection_id)
    _writable(collection, selectors.team_ids_for_user(user=request.auth))
    return collection


def _writable(collection: Collection, team_ids: set[int]) -> None:
    """403 unless the collection is one of `team_ids`' (the caller's teams)."""
    if collection.team_id not in team_ids:
        raise HttpError(
            403,
            f"collection {collection.name} is shared with your team to read; "
            f"only team {collection.team.name} changes its documents",
        )


def _writable_document_or_404(request, document_id: int) -> Document:
    """A document of a collection the caller may change (see `_writable_collection_or_404`)."""
    document = _document_or_404(request, document_id)
    _writable_collection_or_404(request, document.collection_id)
    return document


def _admin_collection_or_404(request, collection_id: int) -> Collection:
    """A collection of the caller's team that the caller administers: 404 for another team's, 403
    for a member who is not the team's admin."""
    collection = _collection_or_404(request, collection_id)
    if not selectors.is_team_admin(user=request.auth, team_id=collection.team_id):
        raise HttpError(
            403, f"only an admin of team {collection.team.name} can change or delete its collections"
        )
    return collection


@router.get("/collections/{collection_id}", response=CollectionOut)
def get_collection(request, collection_id: int):
    team_ids = selectors.team_ids_for_user(user=request.auth)
    return _collection_out(_counted_collection_or_404(request, collection_id), team_ids)


@router.patch("/collections/{collection_id}", response={200: CollectionOut, 403: ErrorOut, 409: ErrorOut})
def update_collection(request, collection_id: int, payload: CollectionPatch):
    collection = _admin_collection_or_404(request, collection_id)
    if payload.name is not None and not payload.name.strip():
        raise HttpError(400, "a collection needs a name")
    # All of the change or none of it: a refused team name leaves a new name unsaved too.
    with _collection_refusals(collection.team, payload.name), transaction.atomic():
        services.collection_update(
            collection=collection,
            name=payload.name,
            description=payload.description,
            instructions=payload.instructions,
            language=payload.language,
            starter_questions=payload.starter_questions,
            actor=request.auth,
        )
        services.collection_share(
            collection=collection,
            teams=payload.shared_with,
            everyone=payload.shared_with_all,
            actor=request.auth,
        )
    team_ids = selectors.team_ids_for_user(user=request.auth)
    return _collection_out(_counted_collection_or_404(request, collection_id), team_ids)


@router.delete("/collections/{collection_id}", response={204: None, 403: ErrorOut})
def delete_collection(request, collection_id: int):
    """The collection, its documents and their passages, for good (team admins)."""
    services.collection_delete(
        collection=_admin_collection_or_404(request, collection_id), actor=request.auth
    )
    return Status(204, None)


class RetriedOut(Schema):
    queued: int


class DocumentIds(Schema):
    ids: list[int] = Field(..., min_length=1, max_length=500)


class DeletedOut(Schema):
    deleted: list[int]


@router.post("/collections/{collection_id}/retry", response={202: RetriedOut, 403: ErrorOut})
def retry_failed_documents(request, collection_id: int):
    """Queue every failed document of the collection again; how many were queued."""
    collection = _writable_collection_or_404(request, collection_id)
    queued = services.collection_retry_failed(collection=collection, actor=request.auth)
    return Status(202, {"queued": queued})


@router.get("/collections/{collection_id}/documents", response=list[DocumentOut])
def list_documents(
    request,
    response: HttpResponse,
    collection_id: int,
    q: str = "",
    status: Literal["", "queued", "processing", "ready", "failed"] = "",
    limit: int = Query(1000, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    source: int | None = None,
):
    """Newest first. `q` matches the title or file name, `status` narrows, `source` keeps a web
    source's pages; at most `limit` from `offset`, with the number matching in the `X-Total-Count`
    header."""
    collection = _collection_or_404(request, collection_id)
    documents = selectors.documents_for_user(
        user=request.auth, collection_id=collection.id, name=q.strip()[:200], status=status, source_id=source
    )
    response["X-Total-Count"] = str(documents.count())
    return [document_out(d) for d in documents[offset : offset + limit]]


@router.post(
    "/collections/{collection_id}/documents",
    response={
        202: UploadOut,
        200: UploadOut,
        403: ErrorOut,
        404: ErrorOut,
        413: ErrorOut,
        415: ErrorOut,
        429: ErrorOut,
    },
)
def upload_document(
    request,
    collection_id: int,
    file: UploadedFile = File(...),
    replace: bool = Form(False),
    path: str = Form(""),
):
    """Upload a file. With `replace=true` it is a new version of the collection's documents of the same
    file name: they are searched until it is ready, then deleted (and kept if it fails). `path`, for a
    file of an uploaded folder, is its path in the folder, kept as its name (multipart file names lose
    their folders on the way)."""
    collection = _writable_collection_or_404(request, collection_id)
    if not limits.counted_upstream(request, "upload"):
        limits.limit_hit(action="upload", key=request.auth.pk)
    document, created = services.document_create(
        collection=collection,
        file=file,
        filename=path or file.name or "upload",
        user=request.auth,
        replace=replace,
        actor=request.auth,
    )
    replaces = []
    if created and replace:
        replaces = list(selectors.document_versions_older(document=document).values_list("id", flat=True))
    return Status(
        202 if created else 200,
        {"id": document.id, "status": document.status, "duplicate": not created, "replaces": replaces},
    )


@router.get("/documents", response=list[DocumentOut])
def find_documents(
    request,
    response: HttpResponse,
    q: str = "",
    status: Literal["", "queued", "processing", "ready", "failed"] = "",
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
):
    """The documents of every collection the caller may read (the chat's "#" finds one to ask
    about by name): `q` matches the title or file name, names beginning with it first, then newest
    first; `status` narrows; the number matching in the `X-Total-Count` header."""
    q = q.strip()[:200]
    documents = selectors.documents_for_user(user=request.auth, name=q, status=status)
    response["X-Total-Count"] = str(documents.count())
    if q:
        documents = selectors.documents_by_name_first(documents, q)
    return [document_out(d) for d in documents[offset : offset + limit]]


# Before the routes with an id: "delete" is not one.
@router.post("/documents/delete", response={200: DeletedOut, 403: ErrorOut})
def delete_documents(request, payload: DocumentIds):
    """Delete several documents at once (at most 500): all of them, or none when one is not found
    (404) or is in a collection shared with the caller's team to read (403)."""
    ids = list(dict.fromkeys(payload.ids))
    found = (
        selectors.documents_for_user(user=request.auth).filter(id__in=ids).select_related("collection__team")
    )
    documents = {d.id: d for d in found}
    missing = [i for i in ids if i not in documents]
    if missing:
        raise Http404(f"no such document: {missing[0]}")
    team_ids = selectors.team_ids_for_user(user=request.auth)
    for document in documents.values():
        _writable(document.collection, team_ids)
    services.documents_delete(documents=list(documents.values()), actor=request.auth)
    return {"deleted": ids}


@router.get("/documents/{document_id}", response=DocumentOut)
def get_document(request, document_id: int):
    return document_out(_document_or_404(request, document_id))


@router.get("/documents/{document_id}/chunks", response=list[ChunkOut])
def list_chunks(
    request,
    response: HttpResponse,
    document_id: int,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
):
    """The passages the document was cut into, as search and the chat see them, in reading order;
    at most `limit` from `offset`, with their number in the `X-Total-Count` header."""
    chunks = selectors.document_chunks(document=_document_or_404(request, document_id))
    response["X-Total-Count"] = str(chunks.count())
    return list(chunks[offset : offset + limit])


@router.get("/documents/{document_id}/file", response={200: None, 404: ErrorOut})
def get_document_file(request, document_id: int):
    """The uploaded file itself, under its original name: Markdown, CSV and text shown as plain text,
    other types downloaded."""
    return downloads.file_response(_document_or_404(request, document_id))


@router.patch("/documents/{document_id}", response={200: DocumentOut, 403: ErrorOut})
def update_document(request, document_id: int, payload: DocumentPatch):
    """Rename the document (its title; the stored file keeps its original name)."""
    document = _writable_document_or_404(request, document_id)
    try:
        services.document_rename(document=document, title=payload.title, actor=request.auth)
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None
    return document_out(document)


@router.delete("/documents/{document_id}", response={204: None, 403: ErrorOut})
def delete_document(request, document_id: int):
    document = _writable_document_or_404(request, document_id)
    services.document_delete(document=document, actor=request.auth)
    return Status(204, None)


@router.post("/documents/{document_id}/retry", response={202: DocumentOut, 403: ErrorOut})
def retry_document(request, document_id: int):
    document = _writable_document_or_404(request, document_id)
    if document.status not in (Document.Status.FAILED, Document.Status.READY):
        raise HttpError(409, "the document is still being processed")
    services.document_requeue(document=document, reset_attempts=True, actor=request.auth)
    document.refresh_from_db()
    return Status(202, document_out(document))


class WebSourceIn(Schema):
    url: str = Field(..., max_length=2000)
    crawl: bool = Field(
        False, description="Also read the pages it links to under the same folder of its site"
    )
    max_pages: int = Field(50, ge=1, description="The most pages a reading keeps (crawls and sitemaps)")
    refresh_hours: int = Field(24, ge=0, le=24 * 366, description="Read again this often; 0: only on request")
    header_name: str | None = Field(
        None,
        max_length=100,
        description="A header sent with each request to the source's own site, such as Authorization",
    )
    header_value: str | None = Field(
        None, max_length=4096, description="Its value: kept sealed, never shown again"
    )


class WebSourcePatch(Schema):
    refresh_hours: int | None = Field(None, ge=0, le=24 * 366)
    max_pages: int | None = Field(None, ge=1)
    header_name: str | None = Field(None, max_length=100, description='"" takes the header away')
    header_value: str | None = Field(None, max_length=4096)


def _header(name: str | None, value: str | None) -> tuple[str, str] | None:
    if name is None and value is None:
        return None
    if name is not None and not name.strip() and not (value or "").strip():
        return ("", "")
    if not (name or "").strip() or not (value or "").strip():
        raise HttpError(
            400, "send header_name and header_value together (an empty header_name takes it away)"
        )
    return (name, value)


class WebSourceOut(Schema):
    id: int
    collection_id: int
    url: str
    crawl: bool
    max_pages: int
    refresh_hours: int
    status: str
    error: str | None
    pages: int
    documents: int
    skipped: list[dict]
    created_at: datetime
    synced_at: datetime | None
    next_sync_at: datetime | None
    failures: int = Field(
        0,
        description="Readings failed in a row; each waits twice as long before the next, up to the schedule",
    )
    header_name: str | None = Field(
        None, description="The sign-in header sent to its site (its value is never shown)"
    )
    progress: dict | None = Field(
        None,
        description='While a reading goes on: {"read": pages read so far, "waiting": addresses still to visit}',
    )


def _web_source_out(w: WebSource) -> dict:
    crawl = (w.state or {}).get("crawl") if w.status == WebSource.Status.SYNCING else None
    return {
        "id": w.id,
        "collection_id": w.collection_id,
        "url": w.url,
        "crawl": w.crawl,
        "max_pages": w.max_pages,
        "refresh_hours": w.refresh_hours,
        "status": w.status,
        "error": w.error or None,
        "pages": w.pages,
        "documents": getattr(w, "document_count", 0),
        "skipped": w.skipped,
        "created_at": w.created_at,
        "synced_at": w.synced_at,
        "next_sync_at": w.next_sync_at,
        "failures": w.failures,
        "header_name": w.header_name or None,
        "progress": {"read": len(crawl["kept"]), "waiting": len(crawl["queue"])} if crawl else None,
    }


def _writable_web_source_or_404(request, source_id: int) -> WebSource:
    try:
        source = selectors.web_source_get(user=request.auth, source_id=source_id)
    except WebSource.DoesNotExist:
        raise Http404("no such web source") from None
    _writable_collection_or_404(request, source.collection_id)
    return source


@router.get("/collections/{collection_id}/web-sources", response=list[WebSourceOut])
def list_web_sources(request, collection_id: int):
    """The web pages and sites the collection reads, with how their last reading went."""
    collection = _collection_or_404(request, collection_id)
    return [_web_source_out(w) for w in selectors.web_sources(collection=collection)]


@router.post(
    "/collections/{collection_id}/web-sources",
    response={
        201: WebSourceOut,
        200: WebSourceOut,
        400: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        409: ErrorOut,
        429: ErrorOut,
    },
)
def add_web_source(request, collection_id: int, payload: WebSourceIn):
    """Read a web page into the collection (with `crawl`, the pages it links to under its folder; a
    sitemap's address, its pages), now and every `refresh_hours` (200 with the source as it stands
    when the collection reads the address already): pages become documents, changed
    ones are ingested anew, pages gone are deleted. Only public addresses unless the operator
    allows private ones (`DOCENT_WEB_PRIVATE_HOSTS`)."""
    collection = _writable_collection_or_404(request, collection_id)
    if not limits.counted_upstream(request, "upload"):
        limits.limit_hit(action="upload", key=request.auth.pk)
    try:
        source = services.web_source_add(
            collection=collection,
            url=payload.url,
            user=request.auth,
            crawl=payload.crawl,
            max_pages=payload.max_pages,
            refresh_hours=payload.refresh_hours,
            header=_header(payload.header_name, payload.header_value),
        )
    except web.Refused as exc:
        raise HttpError(400, str(exc)) from None
    except services.WebSourceExists as exc:
        # Like a file uploaded again: the source the collection already has, as it stands.
        return Status(
            200, _web_source_out(selectors.web_source_get(user=request.auth, source_id=exc.source.id))
        )
    except services.WebSourcesFull as exc:
        raise HttpError(409, str(exc)) from None
    except ValueError as exc:  # the service's bounds (max_pages, refresh_hours)
        raise HttpError(400, str(exc)) from None
    source.document_count = 0
    return Status(201, _web_source_out(source))


@router.post("/web-sources/{source_id}/sync", response={202: WebSourceOut, 403: ErrorOut, 404: ErrorOut})
def sync_web_source(request, source_id: int):
    """Read the source again now (when a reading is under way, it is that one)."""
    source = _writable_web_source_or_404(request, source_id)
    services.web_source_queue(source=source)
    source.refresh_from_db()
    return Status(202, _web_source_out(source))


@router.patch(
    "/web-sources/{source_id}", response={200: WebSourceOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut}
)
def update_web_source(request, source_id: int, payload: WebSourcePatch):
    """Change how often it is read, how many pages it keeps, or its sign-in header."""
    source = _writable_web_source_or_404(request, source_id)
    try:
        services.web_source_update(
            source=source,
            refresh_hours=payload.refresh_hours,
            max_pages=payload.max_pages,
            header=_header(payload.header_name, payload.header_value),
            actor=request.auth,
        )
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None
    return _web_source_out(selectors.web_source_get(user=request.auth, source_id=source.id))


@router.delete("/web-sources/{source_id}", response={204: None, 403: ErrorOut, 404: ErrorOut})
def delete_web_source(request, source_id: int):
    """Stop reading it, and delete the documents read from it."""
    services.web_source_remove(source=_writable_web_source_or_404(request, source_id), actor=request.auth)
    return Status(204, None)


class TeamOut(Schema):
    id: int
    name: str
    role: str


@router.get("/teams", response=list[TeamOut])
def list_teams(request):
    memberships = Membership.objects.filter(user=request.auth, team__deleted_at=None).select_related("team")
    return [{"id": m.team_id, "name": m.team.name, "role": m.role} for m in memberships]


class MemberOut(Schema):
    user_id: int
    username: str
    role: str
    from_sso: bool = Field(False, description="Given by the single sign-on provider's groups, which keep it")


class MemberIn(Schema):
    role: str = "member"


def team_or_404(request, team_id: int, *, admin_to: str | None = None):
    """A team of the caller's: 404 for any other; with `admin_to` (what only its admins may do,
    "change its members"), 403 unless the caller is its admin. The chat's team routes use it too."""
    team = selectors.teams_for_user(user=request.auth).filter(id=team_id).first()
    if team is None:
        raise HttpError(404, "no such team")
    if admin_to and not selectors.is_team_admin(user=request.auth, team_id=team.id):
        raise HttpError(403, f"only an admin of team {team.name} can {admin_to}")
    return team


def _member_out(m: Membership) -> dict:
    return {"user_id": m.user_id, "username": m.user.username, "role": m.role, "from_sso": m.from_sso}


@router.get("/teams/{team_id}/members", response={200: list[MemberOut], 404: ErrorOut})
def list_members(request, team_id: int):
    """The team's members (any member may see them), admins first."""
    team = team_or_404(request, team_id)
    return [_member_out(m) for m in selectors.team_members(team_id=team.id)]


@router.put(
    "/teams/{team_id}/members/{username}",
    response={200: MemberOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
)
def set_member(request, team_id: int, username: str, payload: MemberIn):
    """Add a user (by user name) to the team or change their role: the team's admins. 409 when it
    would leave the team without an admin."""
    team = team_or_404(request, team_id, admin_to="change its members")
    if payload.role not in Membership.Role.values:
        raise HttpError(400, f"role must be one of {', '.join(Membership.Role.values)}")
    user = selectors.active_user(username=username)
    if user is None:
        raise HttpError(404, f"no user named {username!r}")
    try:
        membership = services.membership_change(team=team, user=user, role=payload.role, actor=request.auth)
    except services.LastTeamAdmin as exc:
        raise HttpError(409, f"{exc}; make someone else an admin first") from None
    return _member_out(membership)


@router.delete(
    "/teams/{team_id}/members/{username}", response={204: None, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}
)
def remove_member(request, team_id: int, username: str):
    """Remove a member from the team: the team's admins. From then on the team's collections are
    gone for them from every route and search."""
    team = team_or_404(request, team_id, admin_to="change its members")
    user = selectors.active_user(username=username)
    if user is None or not selectors.team_members(team_id=team.id).filter(user=user).exists():
        raise HttpError(404, f"{username!r} is not a member of team {team.name}")
    try:
        services.membership_change(team=team, user=user, role=None, actor=request.auth)
    except services.LastTeamAdmin as exc:
        raise HttpError(409, f"{exc}; make someone else an admin first") from None
    return Status(204, None)


class AuditEventOut(Schema):
    at: datetime
    actor: str | None = Field(None, description="The username; null for the system")
    action: str
    what: str = Field(description="The action in words")
    target_type: str
    target_id: str
    target: str
    details: dict


def _audit_event_out(e, *, whole: bool = False) -> dict:
    """An event as a team's admins read it; `whole`, as staff do (with its id, team, address and
    request id)."""
    out = {
        "at": e.at,
        "actor": e.actor_name or None,
        "action": e.action,
        "what": audit.ACTIONS.get(e.action, e.action),
        "target_type": e.target_type,
        "target_id": e.target_id,
        "target": e.target,
        "details": e.details,
    }
    if whole:
        out |= {"id": e.id, "team_id": e.team_id, "ip": e.ip, "request_id": e.request_id}
    return out


@router.get("/teams/{team_id}/audit", response={200: list[AuditEventOut], 403: ErrorOut, 404: ErrorOut})
def team_audit(
    request,
    response: HttpResponse,
    team_id: int,
    action: str = "",
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
):
    """What happened in the team, newest first (its admins): members added, changed or removed;
    collections made, changed, shared or deleted; documents uploaded, renamed, read again or
    deleted; web sources. `action` narrows
    to one kind; the number matching in `X-Total-Count`."""
    team = team_or_404(request, team_id, admin_to="read its activity")
    events = selectors.audit_events_for_team(team_id=team.id, action=action)
    response["X-Total-Count"] = str(events.count())
    return [_audit_event_out(e) for e in events[offset : offset + limit]]


class SiteAuditEventOut(AuditEventOut):
    id: int
    team_id: int | None
    ip: str | None
    request_id: str


@router.get("/audit", response={200: list[SiteAuditEventOut], 403: ErrorOut})
def site_audit(
    request,
    since_id: int = Query(0, ge=0, le=MAX_OFFSET),
    action: str = "",
    limit: int = Query(500, ge=1, le=1000),
):
    """The whole audit log, oldest first, for staff (Django admin's users): for a log collector,
    which asks again with the last `id` it has as `since_id`. `action` narrows to one kind. Events
    are listed once a minute old, so that one whose transaction committed after a later id was read
    is not skipped by the cursor."""
    if not request.auth.is_staff:
        raise HttpError(403, "only staff read the whole audit log")
    events = selectors.audit_events_since(since_id=since_id, action=action)
    return [_audit_event_out(e, whole=True) for e in events[:limit]]


class SearchIn(Schema):
    query: str
    collections: list[int] | None = None
    documents: list[int] | None = None  # narrows to these documents' passages
    k: int = 8
    mode: str = "hybrid"
    rerank: bool = True  # false: the fused order, when a reranker is configured


class SearchHitOut(Schema):
    chunk_id: int
    document_id: int
    collection_id: int
    title: str
    text: str
    score: float
    heading_path: str
    page: int | None
    dense_rank: int | None
    keyword_rank: int | None
    language: str  # the passage's collection's, as its keyword index reads it
    url: str | None = Field(None, description="The web page its document was read from, if it was")
    rerank_score: float | None  # the reranker's score, when one re-ordered the results


class SearchOut(Schema):
    results: list[SearchHitOut]
    terms: list[str]


@router.post("/search", response={200: SearchOut, 400: ErrorOut, 404: ErrorOut, 429: ErrorOut})
def search(request, payload: SearchIn):
    if payload.mode not in selectors.MODES:
        raise HttpError(400, f"mode must be one of {', '.join(selectors.MODES)}")
    if not payload.query.strip():
        raise HttpError(400, "query must not be empty")
    limits.limit_hit(action="search", key=request.auth.pk)
    # An empty list narrows nothing, as in the chat: every readable collection (or document) is searched.
    collections, documents = payload.collections or None, payload.documents or None
    if collections is not None:
        readable = set(selectors.collection_ids_for_user(user=request.auth))
        if not set(collections) <= readable:
            raise Http404("no such collection")
    if documents is not None and not selectors.documents_readable(user=request.auth, ids=documents):
        raise Http404("no such document")
    hits = selectors.search(
        user=request.auth,
        query=payload.query,
        collection_ids=collections,
        document_ids=documents,
        k=max(1, min(payload.k, 50)),
        mode=payload.mode,
        rerank=payload.rerank,
    )
    # Highlighted in the languages of the collections the passages come from.
    terms = selectors.query_terms(query=payload.query, collection_ids={h.collection_id for h in hits})
    return {"results": [h.__dict__ | {"url": h.url or None} for h in hits], "terms": terms}
