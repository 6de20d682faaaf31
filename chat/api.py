"""REST endpoints for conversations, feedback and usage: parse, check ownership, delegate."""

from __future__ import annotations

import contextlib
import tempfile
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from ninja import Router, Schema, Status
from ninja.errors import HttpError

from retrieval import selectors as retrieval_selectors
from retrieval.api import team_or_404
from retrieval.auth import api_auth

from . import exports, selectors, services
from .models import Conversation, Feedback, Folder, Message
from .providers import chat_models

router = Router(auth=api_auth, tags=["conversations"])


class ConversationOut(Schema):
    id: str
    title: str
    collections: list[int]
    documents: list[dict] = []  # narrowed to these: [{"id", "title"}]
    shared_url: str | None = None  # the read-only link, while shared
    shared_at: datetime | None = None  # what the link shows ends here
    pinned: bool = False
    archived: bool = False  # out of the list until asked in again (GET ?archived=true lists them)
    model: str | None = None  # the chat model chosen for it; null: the default one
    folder: dict | None = None  # the owner's folder it is in: {"id", "name"}
    created_at: datetime
    updated_at: datetime
    # In a search's results: the newest message holding the words, {"message_id", "role", "snippet"}.
    match: dict | None = None


class MessageOut(Schema):
    id: str
    role: str
    text: str
    status: str
    sources: list[dict]
    # Citations whose passage lacks a figure stated before them: {"marker", "n", "missing"}.
    checks: list[dict] = []
    finish_reason: str | None
    error_code: str | None = None  # with status failed: why (moderation_blocked, provider_unavailable...)
    reply_to: str | None
    # A question's: the answer it follows (null for a first question). Conversations branch: an edited
    # question is a sibling of the one it rewords, and each answer version keeps what followed it.
    parent: str | None = None
    shown: bool = True  # on the thread the reader sees (the chosen or latest version at each turn)
    model: str | None = None
    created_at: str
    chosen_at: str | None = None
    # The caller's own rating of an answer, {"rating", "reasons", "comment"}, or null.
    feedback: dict | None = None


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]


class ConversationPatch(Schema):
    title: str | None = None
    pinned: bool | None = None
    archived: bool | None = None
    model: str | None = None  # "" goes back to the default
    folder_id: int | None = None  # one of the caller's folders; null takes it out of its folder


class FolderIn(Schema):
    name: str
    instructions: str = ""
    collections: list[int] = []


class FolderPatch(Schema):
    name: str | None = None
    instructions: str | None = None  # "" for none
    collections: list[int] | None = None  # [] for all


class FolderOut(Schema):
    id: int
    name: str
    # Go with every question asked in its conversations, after the person's own.
    instructions: str
    # What a conversation started in it searches (those the owner may still read); [] for all.
    collections: list[int]
    conversations: int  # archived ones included
    created_at: datetime


class FeedbackIn(Schema):
    rating: int
    reasons: list[str] = []  # what was wrong: codes of GET /api/v1/feedback-reasons
    comment: str = ""


def _conversation(request, conversation_id) -> Conversation:
    try:
        return selectors.conversation_get(user=request.auth, conversation_id=conversation_id)
    except (Conversation.DoesNotExist, ValueError, ValidationError):
        raise Http404("no such conversation") from None


def _shared_url(request, c: Conversation) -> str | None:
    return request.build_absolute_uri(reverse("shared", args=[c.share_token])) if c.share_token else None


def _out(c: Conversation, request) -> dict:
    return {
        "id": str(c.id),
        "title": c.title,
        "collections": [x.id for x in c.collections.all() if x.deleted_at is None],
        # As the answers' scope reads them: a document whose collection was deleted is out of it.
        "documents": [
            {"id": d.id, "title": d.title} for d in c.documents.all() if d.collection.deleted_at is None
        ],
        "shared_url": _shared_url(request, c),
        "shared_at": c.shared_at if c.share_token else None,
        "pinned": c.pinned_at is not None,
        "archived": c.archived_at is not None,
        "model": c.model or None,
        "folder": {"id": c.folder.id, "name": c.folder.name} if c.folder_id else None,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


CONVERSATIONS_PAGE = 200


@router.get("/conversations", response=list[ConversationOut])
def list_conversations(
    request,
    q: str = "",
    limit: int = CONVERSATIONS_PAGE,
    offset: int = 0,
    archived: bool = False,
    folder: int | None = None,
    with_archived: bool = False,
):
    """The caller's conversations, pinned ones first, then newest first, `limit` (at most 200) from
    `offset`; `q` keeps those whose title or any message contains it, in any case, each with its newest
    such message's id and a snippet of it (`match`; null when only the title holds it). Archived ones
    are left out; `archived=true` lists them instead, last archived first, and `with_archived=true`
    after the others (the chat page's search). `folder`: only those in that folder of the caller's
    (404 for another id)."""
    limit, offset = max(1, min(limit, CONVERSATIONS_PAGE)), max(0, offset)
    conversations = selectors.conversations_for_user(
        user=request.auth, query=q[:200], archived=archived, with_archived=with_archived
    )
    if folder is not None:
        conversations = conversations.filter(folder=_folder(request, folder))
    page = list(
        conversations.select_related("folder").prefetch_related("collections", "documents__collection")[
            offset : offset + limit
        ]
    )
    matches = selectors.conversation_matches(conversation_ids=[c.id for c in page], query=q[:200])
    return [{**_out(c, request), "match": matches.get(c.id)} for c in page]


# Before the routes with an id: "export" is not one.
@router.get("/conversations/export")
def export_conversations(request):
    """Every conversation of the caller as a zip: a Markdown file each, as the export of one gives
    it, and conversations.json with every message as the API lists them."""
    # A big history spills to disk; FileResponse closes the file once it is sent.
    spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115
    now = timezone.now()
    exports.conversations_zip(
        spool,
        exported_at=now.strftime("%Y-%m-%d %H:%M UTC"),
        conversations=selectors.conversations_out(user=request.auth),
    )
    spool.seek(0)
    return FileResponse(
        spool,
        as_attachment=True,
        filename=f"docent-conversations-{now:%Y-%m-%d}.zip",
        content_type="application/zip",
    )


@router.delete("/conversations")
def delete_all_conversations(request, all: bool = False):
    """Delete every conversation of the caller; `?all=true` says it is meant."""
    if not all:
        raise HttpError(400, "to delete every conversation, send ?all=true")
    return {"deleted": services.conversations_delete_all(user=request.auth)}


@router.get("/conversations/{conversation_id}", response=ConversationDetail)
def get_conversation(request, conversation_id: str):
    conversation = _conversation(request, conversation_id)
    messages = [selectors.message_out(m) for m in selectors.conversation_messages(conversation=conversation)]
    given = selectors.feedback_given(user=request.auth, message_ids=[m["id"] for m in messages])
    for m in messages:
        m["feedback"] = given.get(m["id"])
    return {**_out(conversation, request), "messages": messages}


@router.get("/conversations/{conversation_id}/export")
def export_conversation(request, conversation_id: str):
    """The conversation as a Markdown file: questions, answers and the passages each answer cites."""
    conversation = _conversation(request, conversation_id)
    messages = [selectors.message_out(m) for m in selectors.conversation_messages(conversation=conversation)]
    text = exports.conversation_markdown(
        title=conversation.title,
        exported_at=timezone.now().strftime("%Y-%m-%d %H:%M UTC"),
        messages=messages,
    )
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, exports.file_name(conversation.title))
    return response


@router.post("/conversations/{conversation_id}/share")
def share_conversation(request, conversation_id: str):
    """A read-only link to the conversation as it is now, for those who may read every passage it
    draws on. The same link on every call, until sharing stops; each call brings it up to now."""
    conversation = _conversation(request, conversation_id)
    services.conversation_share(conversation=conversation)
    return {"shared_url": _shared_url(request, conversation), "shared_at": conversation.shared_at}


@router.delete("/conversations/{conversation_id}/share", response={204: None})
def unshare_conversation(request, conversation_id: str):
    services.conversation_unshare(conversation=_conversation(request, conversation_id))
    return Status(204, None)


@router.patch("/conversations/{conversation_id}", response=ConversationOut)
def update_conversation(request, conversation_id: str, payload: ConversationPatch):
    """Rename (`title`), pin or unpin (`pinned`), archive or bring back (`archived`), choose the
    chat model of its next answers (`model`, one of those the chat page offers; "" for the default),
    and move it into one of the caller's folders (`folder_id`; null: out of its folder)."""
    moved = "folder_id" in payload.model_fields_set
    if not moved and all(v is None for v in (payload.title, payload.pinned, payload.archived, payload.model)):
        raise HttpError(400, "send a title, pinned, archived, model or folder_id")
    if payload.title is not None and not payload.title.strip():
        raise HttpError(400, "a title must not be empty")
    conversation = _conversation(request, conversation_id)
    if payload.model is not None:
        try:
            conversation = services.conversation_model_set(conversation=conversation, model=payload.model)
        except services.UnknownModel as exc:
            raise HttpError(400, str(exc)) from None
    if payload.title is not None:
        conversation = services.conversation_rename(conversation=conversation, title=payload.title)
    if payload.archived is not None:
        conversation = services.conversation_archive(conversation=conversation, archived=payload.archived)
    if payload.pinned is not None:
        conversation = services.conversation_pin(conversation=conversation, pinned=payload.pinned)
    if moved:
        folder = _folder(request, payload.folder_id) if payload.folder_id is not None else None
        conversation = services.conversation_move(conversation=conversation, folder=folder)
    return _out(conversation, request)


def _folder(request, folder_id: int):
    try:
        return selectors.folder_get(user=request.auth, folder_id=folder_id)
    except Folder.DoesNotExist:
        raise Http404("no such folder") from None


def _readable(request) -> set[int]:
    return set(retrieval_selectors.collection_ids_for_user(user=request.auth))


def _folder_out(folder, readable: set[int]) -> dict:
    """`readable`: the ids of the collections the caller reads."""
    counted = getattr(folder, "conversation_count", None)
    return {
        "id": folder.id,
        "name": folder.name,
        "instructions": folder.instructions,
        "collections": selectors.folder_collection_ids(folder=folder, readable=readable),
        "conversations": folder.conversations.count() if counted is None else counted,
        "created_at": folder.created_at,
    }


@router.get("/folders", response=list[FolderOut])
def list_folders(request):
    """The caller's folders of conversations, by name."""
    readable = _readable(request)
    return [_folder_out(f, readable) for f in selectors.folders_for_user(user=request.auth)]


@router.get("/folders/{folder_id}", response=FolderOut)
def get_folder(request, folder_id: int):
    return _folder_out(_folder(request, folder_id), _readable(request))


@contextlib.contextmanager
def _folder_refusals():
    try:
        yield
    except services.FolderExists as exc:
        raise HttpError(409, str(exc)) from None
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None


@router.post("/folders", response={201: FolderOut})
def create_folder(request, payload: FolderIn):
    """A folder: its name, and optionally the instructions and collections its conversations follow."""
    with _folder_refusals(), transaction.atomic():
        folder = services.folder_create(user=request.auth, name=payload.name)
        services.folder_update(
            folder=folder, instructions=payload.instructions, collection_ids=payload.collections
        )
    return Status(201, _folder_out(folder, _readable(request)))


@router.patch("/folders/{folder_id}", response=FolderOut)
def update_folder(request, folder_id: int, payload: FolderPatch):
    """Rename it, or change its instructions or collections (all of the change, or none)."""
    folder = _folder(request, folder_id)
    with _folder_refusals():
        services.folder_update(
            folder=folder,
            name=payload.name,
            instructions=payload.instructions,
            collection_ids=payload.collections,
        )
    return _folder_out(folder, _readable(request))


@router.delete("/folders/{folder_id}", response={204: None})
def delete_folder(request, folder_id: int):
    """The folder; its conversations stay, out of any folder."""
    services.folder_delete(folder=_folder(request, folder_id))
    return Status(204, None)


@router.delete("/conversations/{conversation_id}", response={204: None})
def delete_conversation(request, conversation_id: str):
    services.conversation_delete(conversation=_conversation(request, conversation_id))
    return Status(204, None)


@router.post("/messages/{message_id}/feedback", response={201: dict})
def give_feedback(request, message_id: str, payload: FeedbackIn):
    if payload.rating not in (1, -1):
        raise HttpError(400, "rating must be 1 or -1")
    try:
        feedback = services.feedback_set(
            user=request.auth,
            message_id=message_id,
            rating=payload.rating,
            comment=payload.comment,
            reasons=payload.reasons,
        )
    except services.InvalidFeedback as exc:
        raise HttpError(400, str(exc)) from None
    except (services.NotFound, ValueError, ValidationError, Message.DoesNotExist):
        raise Http404("no such message") from None
    return Status(201, selectors.feedback_out(feedback))


@router.get("/feedback-reasons")
def list_feedback_reasons(request):
    """What "Not helpful" offers to say was wrong: `{"reasons": [{"code", "label"}]}`."""
    return {"reasons": [{"code": code, "label": label} for code, label in Feedback.REASONS.items()]}


@router.post("/messages/{message_id}/choose", response={204: None})
def choose_answer(request, message_id: str):
    """The chat page's "‹ n / m ›" under an answer or a question: the version turned to is shown,
    with what followed it, and the next question follows on from it."""
    try:
        services.message_choose(user=request.auth, message_id=message_id)
    except (services.NotFound, ValidationError):
        raise Http404("no such message") from None
    return Status(204, None)


class PromptIn(Schema):
    name: str
    text: str
    # Kept for a team (its members use it; only its admins may keep, change or delete it); on
    # creation only: a prompt stays its owner's.
    team_id: int | None = None


def _prompt_saved(request, payload: PromptIn, prompt_id=None) -> dict:
    try:
        prompt = services.prompt_save(
            user=request.auth,
            name=payload.name,
            text=payload.text,
            prompt_id=prompt_id,
            team_id=payload.team_id if prompt_id is None else None,
        )
    except ValidationError as exc:
        raise HttpError(400, "; ".join(exc.messages)) from None
    except services.NotTeamAdmin as exc:
        raise HttpError(403, str(exc)) from None
    except services.NotFound as exc:
        raise Http404(str(exc)) from None
    return selectors.prompt_out(prompt)


@router.get("/prompts")
def list_prompts(request):
    """The prompts the caller may use, by name: what "/name" in the chat's box puts there. Their
    own first, then their teams' (`team_id`, `team`); `editable`: theirs, or a team's they administer."""
    return selectors.prompts_for_user(user=request.auth)


@router.post("/prompts", response={201: dict})
def create_prompt(request, payload: PromptIn):
    """Keep a prompt: the caller's own, or with `team_id` a team's (403 unless one of its admins)."""
    return Status(201, _prompt_saved(request, payload))


@router.put("/prompts/{prompt_id}")
def update_prompt(request, prompt_id: int, payload: PromptIn):
    return _prompt_saved(request, payload, prompt_id)


@router.delete("/prompts/{prompt_id}", response={204: None})
def delete_prompt(request, prompt_id: int):
    try:
        services.prompt_delete(user=request.auth, prompt_id=prompt_id)
    except services.NotFound:
        raise Http404("no such prompt") from None
    return Status(204, None)


@router.get("/chat-models")
def list_chat_models(request):
    """The chat models a conversation may choose (`model` in the ask frame and PATCH), the default
    first; empty offline, where the extractive answerer writes every answer."""
    offered = chat_models()
    return {"default": offered[0] if offered else None, "models": offered}


class MemberUsageOut(Schema):
    username: str
    role: str
    answers: int
    tokens: int
    quota_tokens: int | None  # the monthly quota; null: unlimited


class TeamUsageOut(Schema):
    since: datetime
    renews: datetime
    members: list[MemberUsageOut]


@router.get("/teams/{team_id}/usage", response=TeamUsageOut)
def team_usage(request, team_id: int):
    """What each member of the team has spent this month (its admins; 403 for its other members,
    404 for another team): answers and tokens, chat and API, and each one's quota."""
    team = team_or_404(request, team_id, admin_to="read its usage")
    since = selectors.month_start()
    members = selectors.team_usage(team_id=team.id, since=since)
    return {"since": since, "renews": selectors.month_renews(since), "members": members}


@router.get("/usage")
def usage(request):
    used = selectors.usage_for_user(user=request.auth)
    quota = selectors.quota_for_user(user=request.auth)
    total = used["prompt_tokens"] + used["completion_tokens"]
    return {
        "since": used["since"].isoformat(),
        "renews": selectors.month_renews(used["since"]).isoformat(),
        "prompt_tokens": used["prompt_tokens"],
        "completion_tokens": used["completion_tokens"],
        "total_tokens": total,
        "quota_tokens": quota or None,
        "remaining_tokens": max(quota - total, 0) if quota else None,
    }
