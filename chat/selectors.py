"""Reads for conversations and messages; a user reaches only their own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from retrieval import selectors as retrieval_selectors

from .models import (
    Budget,
    Conversation,
    Feedback,
    Folder,
    Message,
    ModerationRule,
    Preferences,
    SavedPrompt,
    Usage,
)


def conversations_for_user(
    *, user, query: str = "", archived: bool = False, with_archived: bool = False
) -> QuerySet[Conversation]:
    """The user's conversations, pinned ones first, then newest first (with `archived`, the archived
    ones instead, last archived first; `with_archived`, both: the archived ones after the others,
    last archived first); with `query`, those whose title or any message holds it."""
    conversations = Conversation.objects.filter(owner=user)
    if not with_archived:
        conversations = conversations.filter(archived_at__isnull=not archived)
    query = query.strip()
    if query:
        matching = Message.objects.filter(conversation__owner=user, text__icontains=query).values(
            "conversation_id"
        )
        conversations = conversations.filter(Q(title__icontains=query) | Q(id__in=matching))
    # The id settles ties, so that pages from offsets neither repeat nor skip a conversation.
    if archived and not with_archived:
        return conversations.order_by("-archived_at", "-id")
    # Pinned, then each folder's (by name), then the rest: the sidebar's groups, a page at a time.
    # With the archived ones, they come last (an archived conversation is neither pinned nor listed
    # with its folder's).
    return conversations.order_by(
        F("archived_at").desc(nulls_first=True),
        F("pinned_at").desc(nulls_last=True),
        Lower("folder__name").asc(nulls_last=True),
        "folder_id",
        "-updated_at",
        "-id",
    )


def folders_for_user(*, user) -> QuerySet[Folder]:
    """The user's folders by name, each with its number of conversations (archived ones too) and
    its collections."""
    folders = Folder.objects.filter(owner=user).annotate(conversation_count=Count("conversations"))
    # Meta.ordering is not used with GROUP BY.
    return folders.order_by(Lower("name"), "id").prefetch_related("collections")


def folder_get(*, user, folder_id: int) -> Folder:
    return Folder.objects.get(owner=user, id=folder_id)


def folder_collection_ids(*, folder: Folder, readable: set[int]) -> list[int]:
    """The folder's collections its owner may still read (a share withdrawn, a collection deleted:
    left out), by id. `readable`: the ids of those the owner reads (read once for a list of folders)."""
    return sorted(c.id for c in folder.collections.all() if c.id in readable)


def conversation_count(*, user) -> int:
    """All the user's conversations, archived ones included."""
    return Conversation.objects.filter(owner=user).count()


SNIPPET_CHARS = 140


def conversation_matches(*, conversation_ids, query: str) -> dict:
    """For a search's conversations, the newest message of each holding `query` (as the search
    matched it, in any case) and a snippet of its text around the first match: {conversation id:
    {"message_id", "role", "snippet"}}. Conversations found by their title alone have none."""
    query = query.strip()
    if not query or not conversation_ids:
        return {}
    rows = (
        Message.objects.filter(conversation_id__in=conversation_ids, text__icontains=query)
        .order_by("conversation_id", "-created_at", "-id")
        .distinct("conversation_id")
        .values_list("conversation_id", "id", "role", "text")
    )
    return {
        conversation: {
            "message_id": str(message),
            "role": role,
            "snippet": snippet(plain(text) if role == Message.Role.ASSISTANT else text, query),
        }
        for conversation, message, role, text in rows
    }


def plain(markdown: str) -> str:
    """An answer's words without the Markdown around them (citation markers, list and heading marks,
    emphasis, code fences), as a one-line snippet reads best."""
    text = re.sub(r"\s?\[\d+\]", "", markdown)
    text = re.sub(r"(?m)^[ \t]*(?:(?:[-*•]|\d+[.)]|#{1,6}|>)[ \t]+|```\w*)", "", text)
    return re.sub(r"\*\*|__|`", "", text)


def snippet(text: str, query: str, size: int = SNIPPET_CHARS) -> str:
    """About `size` characters of `text` on one line around the first match of `query`, cut at
    words, with an ellipsis where text was left out on either side."""
    flat = re.sub(r"\s+", " ", text).strip()
    found = re.search(re.escape(re.sub(r"\s+", " ", query.strip())), flat, re.IGNORECASE)
    at = found.start() if found else 0
    # Some words before the match for context, the rest after it.
    start = max(0, at - size // 4)
    end = min(len(flat), start + size)
    start = max(0, min(start, end - size))
    if start > 0:
        space = flat.find(" ", start, at)
        start = space + 1 if space != -1 else start
    if end < len(flat):
        space = flat.rfind(" ", max(at + len(query), start), end)
        end = space if space != -1 else end
    return ("…" if start > 0 else "") + flat[start:end].strip() + ("…" if end < len(flat) else "")


def conversation_get(*, user, conversation_id) -> Conversation:
    return Conversation.objects.get(id=conversation_id, owner=user)


def shared_conversation_get(*, user, token: str) -> tuple[Conversation, list[dict]]:
    """A shared conversation with the messages copied when it was shared (as `message_out` gives
    them), for its owner or anyone who may read every collection its answers drew on (the passages
    they cite, and those the model was given besides, which an answer may echo uncited); DoesNotExist
    otherwise (a 404, as for anything not theirs)."""
    conversation = Conversation.objects.select_related("owner").get(share_token=token)
    if conversation.owner_id != user.id:
        read = set(conversation.shared_collections)
        if not read <= set(retrieval_selectors.collection_ids_for_user(user=user)):
            raise Conversation.DoesNotExist
    return conversation, conversation.shared_messages or []


def conversation_scope(*, conversation: Conversation) -> list[int]:
    """The collections a conversation was narrowed to, less any deleted since (empty: all)."""
    return list(conversation.collections.filter(deleted_at__isnull=True).values_list("id", flat=True))


def conversation_documents(*, conversation: Conversation) -> list[int]:
    """The documents a conversation was narrowed to, less those whose collection was deleted since
    (empty: none), as for its collections."""
    return list(
        conversation.documents.filter(collection__deleted_at__isnull=True).values_list("id", flat=True)
    )


def message_get(*, user, message_id) -> Message:
    return Message.objects.select_related("conversation").get(id=message_id, conversation__owner=user)


def conversation_messages(*, conversation: Conversation) -> list[Message]:
    """Every message of the conversation in tree order (see `thread_order`), each marked `shown`."""
    return thread_order(list(conversation.messages.order_by("created_at", "id")))


def conversation_thread(*, conversation: Conversation) -> list[Message]:
    """The conversation as the reader sees it: each shown question followed by its shown answer."""
    return [m for m in conversation_messages(conversation=conversation) if m.shown]


def _latest(versions: list[Message]) -> Message:
    """Of versions (a question's answers, or the questions that follow one answer), the one the
    reader turned to last, or else the one made last."""
    return max(versions, key=lambda m: (m.chosen_at or m.created_at, m.created_at))


def thread_order(messages: list[Message]) -> list[Message]:
    """`messages` (one conversation's, oldest first) as a tree: each question followed by its answers
    (the first, then each regeneration), then the questions that follow each of those answers, and
    so on. Each message gets `shown`: whether it is on the thread the reader sees, which takes the
    chosen (or latest) version at every turn. An edited question is a sibling of the question it
    rewords; a regeneration made after later exchanges starts a branch, the exchanges staying with
    the version they followed."""
    asked: dict = {}
    answers: dict = {}
    for m in messages:
        if m.role == Message.Role.USER:
            asked.setdefault(m.parent_id, []).append(m)
        elif m.reply_to_id is not None:
            answers.setdefault(m.reply_to_id, []).append(m)
    out: list[Message] = []
    # Iterative: a conversation may run to thousands of exchanges, deeper than Python's recursion.
    stack: list[tuple] = [(None, True)]
    while stack:
        parent_id, on_thread = stack.pop()
        questions = asked.pop(parent_id, [])
        shown_question = _latest(questions) if questions and on_thread else None
        below: list[tuple] = []
        for q in questions:
            q.shown = q is shown_question
            out.append(q)
            versions = answers.pop(q.id, [])
            shown_answer = _latest(versions) if versions and q.shown else None
            for a in versions:
                a.shown = a is shown_answer
                out.append(a)
                below.append((a.id, a.shown))
        stack.extend(reversed(below))
    placed = {m.id for m in out}
    for m in messages:  # nothing should be left over; kept, not shown, if something is
        if m.id not in placed:
            m.shown = False
            out.append(m)
    return out


def conversations_out(*, user) -> Iterator[dict]:
    """Every conversation of the user, newest first, with its messages as the API gives them: what
    an export of them all writes."""
    for c, messages in conversations_with_messages(user=user):
        yield {
            "id": str(c.id),
            "title": c.title,
            "created_at": c.created_at.isoformat(),
            "updated_at": c.updated_at.isoformat(),
            "pinned": c.pinned_at is not None,
            "folder": c.folder.name if c.folder else None,
            "messages": [message_out(m) for m in messages],
        }


def conversations_with_messages(*, user, batch: int = 100) -> Iterator[tuple[Conversation, list[Message]]]:
    """Every conversation of the user, newest first, each with its messages in thread order: read
    `batch` conversations at a time, so that an export of thousands holds one batch in memory."""
    ids = list(
        Conversation.objects.filter(owner=user).order_by("-updated_at", "-id").values_list("id", flat=True)
    )
    for start in range(0, len(ids), batch):
        part = ids[start : start + batch]
        conversations = Conversation.objects.select_related("folder").in_bulk(part)
        messages: dict = {}
        for m in Message.objects.filter(conversation_id__in=part).order_by("created_at", "id"):
            messages.setdefault(m.conversation_id, []).append(m)
        for cid in part:
            if cid in conversations:  # deleted meanwhile: left out
                yield conversations[cid], thread_order(messages.get(cid, []))


def generation_context(*, message_id) -> dict:
    """Everything an answer needs: the question, its scope and the exchanges it follows (its branch
    of the conversation, oldest first)."""
    answer = Message.objects.select_related("conversation", "reply_to", "user").get(id=message_id)
    conversation = answer.conversation
    # The question, then the answer it follows, that answer's question, and so on to the first.
    chain = message_chain(conversation_id=conversation.id, message_id=answer.reply_to_id)
    rows = Message.objects.filter(id__in=chain[1:]).only("text", "status", "error_code").in_bulk()
    above = [rows[m] for m in chain[1:] if m in rows]
    history: list[tuple[str, str]] = []
    for earlier, question in reversed(list(zip(above[0::2], above[1::2], strict=False))):
        if earlier.error_code == "moderation_blocked":
            continue  # a refused question never reaches a model, later turns included
        history.append(("user", question.text))
        if earlier.status in (Message.Status.COMPLETE, Message.Status.STOPPED) and earlier.text:
            history.append(("assistant", earlier.text))
    return question_context(
        user=answer.user,
        question=answer.reply_to.text,
        collection_ids=conversation_scope(conversation=conversation),
        document_ids=conversation_documents(conversation=conversation),
        history=history,
        model=conversation.model,
        folder_id=conversation.folder_id,
    )


def message_chain(*, conversation_id, message_id) -> list:
    """Ids of the message and of every message it follows, up to the conversation's first question:
    an answer's question, a question's answer before it, and so on. One query, of the links only."""
    up = {
        mid: reply_to if role == Message.Role.ASSISTANT else parent
        for mid, role, reply_to, parent in Message.objects.filter(
            conversation_id=conversation_id
        ).values_list("id", "role", "reply_to_id", "parent_id")
    }
    chain, at = [], message_id
    while at in up and len(chain) < len(up):  # the bound: a cycle would never end
        chain.append(at)
        at = up[at]
    return chain


def thread_followed(*, conversation: Conversation):
    """The id of the answer a new question follows: the last of the thread the reader sees (None in
    a conversation without one)."""
    # Not through conversation.messages: the related manager reads each row's conversation id, a
    # deferred field here, once per message.
    messages = list(
        Message.objects.filter(conversation_id=conversation.id)
        .order_by("created_at", "id")
        .only("id", "role", "parent", "reply_to", "chosen_at", "created_at")
    )
    answers = [m for m in thread_order(messages) if m.shown and m.role == Message.Role.ASSISTANT]
    return answers[-1].id if answers else None


def question_context(
    *, user, question: str, collection_ids, document_ids=None, history=(), model: str = "", folder_id=None
) -> dict:
    """What an answer needs, as generation_context returns it; also built directly for the first
    question of a new conversation, which has nothing earlier to read."""
    return {
        "user": user,
        "model": model,
        "instructions": user_instructions(user=user, folder_id=folder_id),
        "question": question,
        "collection_ids": list(collection_ids) if collection_ids else None,
        "document_ids": list(document_ids) if document_ids else None,
        "history": list(history),
    }


def prompt_out(prompt: SavedPrompt, *, editable: bool = True) -> dict:
    return {
        "id": prompt.id,
        "name": prompt.name,
        "text": prompt.text,
        "team_id": prompt.team_id,
        "team": prompt.team.name if prompt.team_id else None,
        "editable": editable,
    }


def prompts_for_user(*, user) -> list[dict]:
    """The prompts the user may use, by name: their own, then their teams' (`team`: its name),
    [{"id", "name", "text", "team_id", "team", "editable"}]; `editable`: theirs, or of a team they
    administer."""
    teams = retrieval_selectors.team_ids_for_user(user=user)
    administered = retrieval_selectors.team_ids_administered(user=user)
    found = SavedPrompt.objects.filter(Q(user=user) | Q(team_id__in=teams)).select_related("team")
    rows = [prompt_out(p, editable=p.team_id is None or p.team_id in administered) for p in found]
    return sorted(rows, key=lambda r: (r["team"] is not None, r["name"], r["team"] or ""))


def user_instructions(*, user, folder_id=None) -> str:
    """What the person asks of every answer written for them ("" when nothing), then what they ask
    of those in the folder (`folder_id`) the conversation is in."""
    own = Preferences.objects.filter(user=user).values_list("instructions", flat=True).first() or ""
    folder = ""
    if folder_id is not None:
        folder = (
            Folder.objects.filter(id=folder_id, owner=user).values_list("instructions", flat=True).first()
            or ""
        )
    return "\n\n".join(text for text in (own, folder) if text)


def quota_for_user(*, user) -> int:
    """Tokens the user may spend per month: their own budget if an admin set one, else the default;
    0 means unlimited."""
    own = Budget.objects.filter(user=user).values_list("monthly_tokens", flat=True).first()
    return settings.DOCENT_MONTHLY_TOKEN_QUOTA if own is None else own


def month_start():
    return timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_renews(since):
    """When the quota period starting at `since` (a month's first instant) ends: the next month's."""
    return (since + timedelta(days=32)).replace(day=1)


def month_tokens_of_user(user_field: str):
    """An expression for querysets of objects with a user: the tokens that user spent this month."""
    spent = (
        Usage.objects.filter(user=OuterRef(user_field), created_at__gte=month_start())
        .values("user")
        .annotate(total=Sum(F("prompt_tokens") + F("completion_tokens")))
        .values("total")
    )
    return Coalesce(Subquery(spent), 0)


def usage_for_user(*, user, since=None) -> dict:
    since = since or month_start()
    totals = Usage.objects.filter(user=user, created_at__gte=since).aggregate(
        prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens")
    )
    return {
        "since": since,
        "prompt_tokens": totals["prompt"] or 0,
        "completion_tokens": totals["completion"] or 0,
    }


def team_usage(*, team_id: int, since) -> list[dict]:
    """Each active member of the team, with the answers and tokens they had since `since` (chat and
    API, whatever they asked) and their monthly quota (None: unlimited); most tokens first."""
    members = list(retrieval_selectors.team_members(team_id=team_id))
    ids = [m.user_id for m in members]
    spent = {
        row["user_id"]: row
        for row in Usage.objects.filter(user_id__in=ids, created_at__gte=since)
        .values("user_id")
        .annotate(answers=Count("id"), tokens=Sum(F("prompt_tokens") + F("completion_tokens")))
    }
    budgets = dict(Budget.objects.filter(user_id__in=ids).values_list("user_id", "monthly_tokens"))
    rows = []
    for m in members:
        used = spent.get(m.user_id, {})
        quota = budgets.get(m.user_id, settings.DOCENT_MONTHLY_TOKEN_QUOTA)
        rows.append(
            {
                "username": m.user.get_username(),
                "role": m.role,
                "answers": used.get("answers", 0),
                "tokens": used.get("tokens") or 0,
                "quota_tokens": quota or None,
            }
        )
    return sorted(rows, key=lambda r: (-r["tokens"], r["username"]))


def usage_summary(*, usages: QuerySet[Usage], top: int = 10) -> dict:
    """Totals of a set of usage rows (an admin's filtered list), and its biggest spenders and models,
    grouped in SQL."""
    tokens = F("prompt_tokens") + F("completion_tokens")
    totals = usages.aggregate(
        answers=Count("id"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens")
    )

    def biggest(field: str) -> list[dict]:
        rows = (
            usages.values(name=F(field))
            .annotate(
                answers=Count("id"),
                prompt=Sum("prompt_tokens"),
                completion=Sum("completion_tokens"),
                total=Sum(tokens),
            )
            .order_by("-total", "name")
        )
        return list(rows[:top])

    return {
        "answers": totals["answers"],
        "prompt_tokens": totals["prompt"] or 0,
        "completion_tokens": totals["completion"] or 0,
        "by_user": biggest("user__username"),
        "by_model": biggest("model"),
    }


def feedback_summary(*, feedback: QuerySet[Feedback]) -> dict:
    """How the answers in a set of ratings (an admin's filtered list) did, in all and per model, and
    how often each reason was given."""
    counts = {
        "helpful": Count("id", filter=Q(rating=1)),
        "not_helpful": Count("id", filter=Q(rating=-1)),
    }
    rows = feedback.values(name=F("message__model")).annotate(**counts).order_by("-helpful", "name")
    totals = feedback.aggregate(
        **counts,
        **{f"reason_{code}": Count("id", filter=Q(reasons__contains=[code])) for code in Feedback.REASONS},
    )
    by_reason = sorted(
        (
            {"code": code, "label": label, "count": totals.pop(f"reason_{code}")}
            for code, label in Feedback.REASONS.items()
        ),
        key=lambda r: -r["count"],
    )
    return {**totals, "by_model": list(rows), "by_reason": [r for r in by_reason if r["count"]]}


def feedback_out(feedback: Feedback) -> dict:
    return {"rating": feedback.rating, "reasons": feedback.reasons, "comment": feedback.comment}


def feedback_given(*, user, message_ids) -> dict[str, dict]:
    """The user's own ratings of these messages, by message id."""
    rows = Feedback.objects.filter(user=user, message_id__in=message_ids)
    return {str(f.message_id): feedback_out(f) for f in rows}


def message_out(message: Message) -> dict:
    return {
        "id": str(message.id),
        "role": message.role,
        "text": message.text,
        "status": message.status,
        "sources": message.citations if message.role == Message.Role.ASSISTANT else [],
        "checks": message.checks if message.role == Message.Role.ASSISTANT else [],
        "finish_reason": message.finish_reason or None,
        "error_code": message.error_code or None,
        "reply_to": str(message.reply_to_id) if message.reply_to_id else None,
        # The answer a question follows; whether the message is on the thread the reader sees.
        "parent": str(message.parent_id) if message.parent_id else None,
        "shown": getattr(message, "shown", True),
        "model": message.model or None,  # the chat model that wrote an answer
        "created_at": message.created_at.isoformat(),
        "chosen_at": message.chosen_at.isoformat() if message.chosen_at else None,
    }


def moderation_rules_enabled() -> list[tuple[int, str, str, str, str]]:
    """(id, kind, pattern, category, applies_to) of every enabled moderation rule."""
    return list(
        ModerationRule.objects.filter(enabled=True).values_list(
            "id", "kind", "pattern", "category", "applies_to"
        )
    )
