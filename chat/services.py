"""Writes for conversations, messages and feedback. Sync and transactional; async callers wrap them."""

from __future__ import annotations

import logging
import secrets
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from retrieval import audit, limits
from retrieval import selectors as retrieval_selectors
from retrieval.embeddings import count_tokens

from . import prompts, selectors
from .models import (
    Conversation,
    Feedback,
    Folder,
    Message,
    ModerationFlag,
    ModerationRule,
    Preferences,
    SavedPrompt,
    Usage,
)
from .providers import chat_models

log = logging.getLogger(__name__)


class NotFound(LookupError):
    """The object does not exist or belongs to someone else (shown as not_found / 404)."""


class UnknownModel(ValueError):
    """A chat model not among those offered (`chat.providers.chat_models`)."""


def _model_checked(model: str) -> str:
    if model and model not in chat_models():
        raise UnknownModel(f"no chat model named {model!r} here")
    return model


class NotEditable(Exception):
    """A question is reworded only while no answer of its conversation is being written."""


class InvalidFeedback(ValueError):
    pass


class QuotaExceeded(Exception):
    def __init__(self, quota: int, retry_after: int):
        self.retry_after = retry_after
        super().__init__(f"you have used this month's {quota:,} tokens; the quota renews on the 1st (UTC)")


def ask_admit(*, user) -> None:
    """Count a question (or a regeneration) against the user's rate and check the monthly token quota.

    Raises limits.RateLimited or QuotaExceeded. The quota counts finished answers, so the answer that
    crosses it still completes: budgets are checked before an answer, never by cutting one short.
    """
    limits.limit_hit(action="ask", key=user.pk)
    quota = selectors.quota_for_user(user=user)
    if not quota:
        return
    used = selectors.usage_for_user(user=user)
    if used["prompt_tokens"] + used["completion_tokens"] >= quota:
        renews = selectors.month_renews(used["since"])
        raise QuotaExceeded(quota, max(int((renews - timezone.now()).total_seconds()), 1))


def _ids(conversation: Conversation, user_message: Message, answer: Message, created: bool) -> dict:
    return {
        "conversation_id": str(conversation.id),
        "user_message_id": str(user_message.id),
        # The answer the question follows (None for a conversation's first), so a client can place it.
        "parent_id": str(user_message.parent_id) if user_message.parent_id else None,
        "message_id": str(answer.id),
        "created": created,
    }


def exchange_start(
    *,
    user,
    conversation_id: str | None,
    request_id: str,
    content: str,
    collection_ids: list[int] | None,
    document_ids: list[int] | None = None,
    model: str | None = None,
    folder_id: int | None = None,
) -> dict:
    """Store the question and a pending answer; a repeated request_id returns the first exchange.

    The repeat is found by the unique constraint, not by a read first: asking is the hot path.
    With `created`, the result also carries `new_conversation` and `collection_ids`. `model` (given: "" for the
    default) becomes the conversation's chat model. `folder_id`: the folder of the user's a new
    conversation starts in (NotFound for any other; ignored for a conversation asked in again);
    with no `collection_ids`, it searches the folder's collections.
    """
    if model is not None:
        _model_checked(model)
    try:
        with transaction.atomic():
            if conversation_id:
                try:
                    # Locked: two questions sent at once follow one another, not the same answer.
                    conversation = (
                        Conversation.objects.select_for_update()
                        .filter(id=conversation_id, owner=user)
                        .first()
                    )
                except ValidationError:  # not a UUID
                    conversation = None
                if conversation is None:
                    existing = _asked_before(user, request_id)
                    if existing is not None:
                        return existing
                    raise NotFound("no such conversation")
                conversation.archived_at = None  # asked in again: back in the list
                changed = ["updated_at", "archived_at"]
                if model is not None:
                    conversation.model = model
                    changed.append("model")
                conversation.save(update_fields=changed)
            else:
                folder = None
                if folder_id is not None:
                    try:
                        folder = selectors.folder_get(user=user, folder_id=folder_id)
                    except Folder.DoesNotExist:
                        raise NotFound("no such folder") from None
                conversation = Conversation.objects.create(
                    owner=user, title=prompts.title_from(content), model=model or "", folder=folder
                )
                if folder is not None and collection_ids is None:
                    # Asked without a scope (an API client, say): the folder's collections apply,
                    # as they do in the browser, which sends them.
                    readable = set(retrieval_selectors.collection_ids_for_user(user=user))
                    collection_ids = selectors.folder_collection_ids(folder=folder, readable=readable)
            if collection_ids is not None:
                conversation.collections.set(collection_ids)
            if document_ids is not None:
                conversation.documents.set(document_ids)
            question = Message.objects.create(
                conversation=conversation,
                user=user,
                role=Message.Role.USER,
                text=content,
                request_id=request_id,
                parent_id=selectors.thread_followed(conversation=conversation) if conversation_id else None,
            )
            answer = Message.objects.create(
                conversation=conversation,
                user=user,
                role=Message.Role.ASSISTANT,
                status=Message.Status.PENDING,
                reply_to=question,
                heartbeat_at=timezone.now(),
            )
    except IntegrityError:
        # The same request_id again (a client retry, or a race with another socket).
        existing = _asked_before(user, request_id)
        if existing is None:
            raise
        return existing
    return {
        **_ids(conversation, question, answer, True),
        "new_conversation": not conversation_id,
        "collection_ids": collection_ids,  # the scope searched: a folder's when none was given
    }


def _asked_before(user, request_id: str) -> dict | None:
    existing = (
        Message.objects.select_related("conversation")
        .filter(user=user, role=Message.Role.USER, request_id=request_id)
        .first()
    )
    if existing is None:
        return None
    return _ids(existing.conversation, existing, existing.answers.order_by("-created_at").first(), False)


def answer_regenerate(*, user, message_id, request_id: str = "", admit=None) -> dict:
    """A new answer to the same question; the earlier one is kept. A repeated request_id returns
    the answer the first request started (`created` false), and `admit` (rate and quota) runs only
    for a new one, in its transaction."""
    old = (
        Message.objects.select_related("conversation", "reply_to")
        .filter(id=message_id, conversation__owner=user, role=Message.Role.ASSISTANT)
        .first()
    )
    if old is None or old.reply_to is None:
        raise NotFound("no such message")

    def start() -> dict:
        Conversation.objects.filter(id=old.conversation_id).update(archived_at=None)  # in use again
        answer = _answer_pending(old.reply_to, request_id)
        _choose_with_versions_above(answer)  # shown, also when redone from a branch not shown
        return _ids(old.conversation, old.reply_to, answer, True)

    return _answer_once(user, request_id, start, admit)


def _answer_once(user, request_id: str, start, admit) -> dict:
    """`start()` (storing a new answer) in a transaction with `admit`, unless an answer was already
    started for this request_id: a client that lost the socket before hearing `accepted` sends the
    same request again, and gets the first answer, not a second one."""
    existing = _answered_before(user, request_id)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            ids = start()
            if admit is not None:
                admit()  # raising undoes what start() stored
            return ids
    except IntegrityError:  # the same request from another socket, at the same moment
        existing = _answered_before(user, request_id)
        if existing is None:
            raise
        return existing


def _answered_before(user, request_id: str) -> dict | None:
    if not request_id:
        return None
    answer = (
        Message.objects.select_related("conversation", "reply_to")
        .filter(user=user, role=Message.Role.ASSISTANT, request_id=request_id)
        .first()
    )
    if answer is None:
        return None
    return _ids(answer.conversation, answer.reply_to, answer, False)


def _answer_pending(question: Message, request_id: str = "") -> Message:
    """A new answer to the question, waiting for its generation to start."""
    return Message.objects.create(
        conversation_id=question.conversation_id,
        user_id=question.user_id,
        role=Message.Role.ASSISTANT,
        status=Message.Status.PENDING,
        reply_to=question,
        request_id=request_id,
        heartbeat_at=timezone.now(),
    )


def question_edit(*, user, message_id, content: str, request_id: str = "", admit=None) -> dict:
    """A question reworded: a new version of it, beside the old one (which keeps its answers and
    the exchanges that followed them, a branch the reader can turn back to), with a new answer
    started. Refused while an answer of the conversation is still being written. A repeated
    request_id returns the answer the first request started."""

    def start() -> dict:
        question = (
            Message.objects.select_related("conversation")
            .filter(id=message_id, conversation__owner=user, role=Message.Role.USER)
            .first()
        )
        if question is None:
            raise NotFound("no such message")
        conversation = Conversation.objects.select_for_update().get(id=question.conversation_id)
        unfinished = conversation.messages.filter(role=Message.Role.ASSISTANT).exclude(
            status__in=Message.FINAL
        )
        if unfinished.exists():
            raise NotEditable("stop the answer before editing a question")
        if question.parent_id is None and conversation.title == prompts.title_from(question.text):
            conversation.title = prompts.title_from(content)  # named after it, not renamed
        reworded = Message.objects.create(
            conversation=conversation,
            user=user,
            role=Message.Role.USER,
            text=content,
            parent_id=question.parent_id,
        )
        answer = _answer_pending(reworded, request_id)
        _choose_with_versions_above(answer)  # shown, also when reworded in a branch not shown
        conversation.archived_at = None
        conversation.save(update_fields=["title", "updated_at", "archived_at"])
        return _ids(conversation, reworded, answer, True)

    return _answer_once(user, request_id, start, admit)


def message_progress(*, message_id, **fields) -> None:
    """Record how an answer is going, unless it has already ended."""
    fields.setdefault("heartbeat_at", timezone.now())
    Message.objects.filter(id=message_id).exclude(status__in=Message.FINAL).update(
        updated_at=timezone.now(), **fields
    )


def messages_checkpoint(
    *, texts: dict[str, str], alive: list[str], prompt_tokens: dict[str, int] | None = None
) -> None:
    """One round of saves for every answer streaming in a process: the text of those that grew (with
    the size of their prompt, so that the sweep can ledger it if the process dies) and a heartbeat
    for all (so the interrupted-answer sweep leaves them alone). Answers that already ended are left
    as they are."""
    now = timezone.now()
    final = [str(s) for s in Message.FINAL]
    prompt_tokens = prompt_tokens or {}
    with transaction.atomic(), connection.cursor() as cursor:
        if texts:
            cursor.execute(
                f"UPDATE {Message._meta.db_table} AS m SET text = v.text, heartbeat_at = %s, updated_at = %s,"
                " prompt_tokens = greatest(m.prompt_tokens, v.prompt_tokens)"
                " FROM unnest(%s::uuid[], %s::text[], %s::int[]) AS v(id, text, prompt_tokens)"
                " WHERE m.id = v.id AND NOT (m.status = ANY(%s))",
                [
                    now,
                    now,
                    list(texts),
                    list(texts.values()),
                    [prompt_tokens.get(m, 0) for m in texts],
                    final,
                ],
            )
        rest = [m for m in alive if m not in texts]
        if rest:
            cursor.execute(
                f"UPDATE {Message._meta.db_table} SET heartbeat_at = %s"
                " WHERE id = ANY(%s::uuid[]) AND NOT (status = ANY(%s))",
                [now, rest, final],
            )


def message_finish(*, message_id, flag=None, **fields) -> bool:
    """Store the final state unless the answer already ended (a sweep may have called it interrupted),
    and the tokens it used in the usage ledger; with `flag` (a moderation verdict), the question in
    the moderation flags."""
    fields.setdefault("heartbeat_at", timezone.now())
    with transaction.atomic():
        done = (
            Message.objects.filter(id=message_id)
            .exclude(status__in=Message.FINAL)
            .update(updated_at=timezone.now(), **fields)
        )
        user_id = None
        if done and flag is not None:
            question = Message.objects.values("id", "user_id", "text").get(answers=message_id)
            user_id = question["user_id"]  # the asker's, as the answer's own is
            moderation_flag_record(
                user_id=user_id,
                source=Usage.Source.CHAT,
                text=question["text"] if flag.text is None else flag.text,
                verdict=flag,
                message_id=question["id"],
            )
        if done and (fields.get("prompt_tokens") or fields.get("completion_tokens")):
            if user_id is None:
                user_id = Message.objects.values_list("user_id", flat=True).get(id=message_id)
            usage_record(
                user_id=user_id,
                source=Usage.Source.CHAT,
                message_id=message_id,
                model=fields.get("model", ""),
                prompt_tokens=fields.get("prompt_tokens", 0),
                completion_tokens=fields.get("completion_tokens", 0),
            )
    return bool(done)


def usage_record(
    *, user_id: int, source: str, prompt_tokens: int, completion_tokens: int, model: str = "", message_id=None
) -> Usage:
    return Usage.objects.create(
        user_id=user_id,
        source=source,
        message_id=message_id,
        model=model or "",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def moderation_flag_record(
    *, user_id: int, source: str, text: str, verdict, message_id=None
) -> ModerationFlag:
    return ModerationFlag.objects.create(
        user_id=user_id,
        source=source,
        subject=verdict.subject,
        message_id=message_id,
        text=text,
        checker=verdict.checker,
        categories=list(verdict.categories),
        # Another process may have matched a rule deleted since (rules are cached for a while).
        rule_id=ModerationRule.objects.filter(id=verdict.rule_id).values_list("id", flat=True).first(),
    )


def moderation_flags_review(*, flag_ids) -> int:
    return ModerationFlag.objects.filter(id__in=flag_ids, reviewed=False).update(reviewed=True)


def messages_sweep_interrupted(*, stale_after_s: int) -> list[str]:
    """Answers whose generating process died: mark them interrupted, keeping the checkpointed text,
    and put what they cost in the usage ledger: the prompt's tokens as last checkpointed, the text's
    counted here (the provider never reported them)."""
    cutoff = timezone.now() - timezone.timedelta(seconds=stale_after_s)
    with transaction.atomic():
        # Locked, so that an answer finishing right now is either finished (and ledgered) by its
        # generator or swept here, never both.
        stale = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(
                role=Message.Role.ASSISTANT,
                status__in=[Message.Status.PENDING, Message.Status.STREAMING],
                heartbeat_at__lt=cutoff,
            )
            .values_list("id", "user_id", "text", "model", "prompt_tokens")
        )
        if not stale:
            return []
        Message.objects.filter(id__in=[m[0] for m in stale]).update(
            status=Message.Status.INTERRUPTED, finish_reason="interrupted", updated_at=timezone.now()
        )
        # ignore_conflicts: an answer already in the ledger stays there once.
        Usage.objects.bulk_create(
            [
                Usage(
                    user_id=user_id,
                    source=Usage.Source.CHAT,
                    message_id=message_id,
                    model=model,
                    prompt_tokens=prompt,
                    completion_tokens=count_tokens(text) if text else 0,
                )
                for message_id, user_id, text, model, prompt in stale
                if text or prompt
            ],
            ignore_conflicts=True,
        )
    log.warning("marked %d answers interrupted", len(stale))
    return [str(m[0]) for m in stale]


def feedback_set(*, user, message_id, rating: int, comment: str = "", reasons=()) -> Feedback:
    """The reader's rating of an answer, with what was wrong (codes of Feedback.REASONS) and words;
    given again, it replaces the first. InvalidFeedback for a reason not offered."""
    unknown = [r for r in reasons if r not in Feedback.REASONS]
    if unknown:
        raise InvalidFeedback(f"unknown reason {unknown[0]!r}; one of {', '.join(Feedback.REASONS)}")
    message = Message.objects.filter(
        id=message_id, conversation__owner=user, role=Message.Role.ASSISTANT
    ).first()
    if message is None:
        raise NotFound("no such message")
    feedback, _ = Feedback.objects.update_or_create(
        message=message,
        user=user,
        defaults={
            "rating": 1 if rating > 0 else -1,
            "reasons": [r for r in Feedback.REASONS if r in reasons],  # once each, in a fixed order
            "comment": comment.strip()[: Feedback.COMMENT_MAX],
        },
    )
    return feedback


def message_choose(*, user, message_id) -> None:
    """The reader turned to this version of an answer (or of a question): it is shown, with the
    versions it follows (chosen with it, so that a message deep in a branch comes into view whole)
    and the exchanges that followed it; a new question follows on from it, until another is chosen
    or made."""
    message = Message.objects.filter(id=message_id, conversation__owner=user).only("conversation_id").first()
    if message is None:
        raise NotFound("no such message")
    _choose_with_versions_above(message)


def _choose_with_versions_above(message: Message) -> None:
    """Mark the message chosen, with every message it follows: the thread shown then runs through it."""
    chain = selectors.message_chain(conversation_id=message.conversation_id, message_id=message.id)
    Message.objects.filter(id__in=chain).update(chosen_at=timezone.now())


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    conversation.title = title.strip()[:200]
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def instructions_set(*, user, instructions: str) -> str:
    """What the person asks of every answer written for them, from now on ("" for nothing);
    ValidationError when longer than Preferences.INSTRUCTIONS_MAX."""
    instructions = instructions.strip()
    if len(instructions) > Preferences.INSTRUCTIONS_MAX:
        raise ValidationError(f"at most {Preferences.INSTRUCTIONS_MAX} characters")
    Preferences.objects.update_or_create(user=user, defaults={"instructions": instructions})
    return instructions


class NotTeamAdmin(PermissionError):
    """Only a team's admins keep its prompts (shown as 403)."""


def _prompts_editable(user):
    """The prompts `user` may change: their own, and those of the teams they administer."""
    administered = retrieval_selectors.team_ids_administered(user=user)
    return SavedPrompt.objects.filter(Q(user=user) | Q(team_id__in=administered))


def prompt_save(
    *, user, name: str, text: str, prompt_id=None, replace: bool = False, team_id: int | None = None
) -> SavedPrompt:
    """Keep a prompt under a name (lower-cased; typed as /name in the chat): the user's own, or with
    `team_id` their team's, for every member (NotFound unless a member, NotTeamAdmin unless one of
    its admins). With `prompt_id`, change that prompt's name and text (NotFound unless the user's
    own or one of a team they administer); with `replace`, a prompt already kept under the name by
    the same owner gets the new text. ValidationError for a bad name or text, or a name the owner
    already uses for another prompt."""
    name = name.strip().lower()
    if prompt_id is None and team_id is not None:
        if team_id not in retrieval_selectors.team_ids_for_user(user=user):
            raise NotFound("no such team")
        if not retrieval_selectors.is_team_admin(user=user, team_id=team_id):
            raise NotTeamAdmin("only the team's admins keep its prompts")
    owner = {"team_id": team_id} if team_id is not None else {"user": user}
    if prompt_id is None and replace:
        prompt_id = SavedPrompt.objects.filter(**owner, name=name).values_list("id", flat=True).first()
    if prompt_id is not None:
        prompt = _prompts_editable(user).filter(id=prompt_id).first()
        if prompt is None:
            raise NotFound("no such prompt")
        owner = {"team_id": prompt.team_id} if prompt.team_id else {"user": user}
    else:
        prompt = SavedPrompt(**owner)
    prompt.name, prompt.text = name, text.strip()
    if len(prompt.text) > SavedPrompt.TEXT_MAX:  # a TextField's max_length is not validated
        raise ValidationError(f"a prompt is at most {SavedPrompt.TEXT_MAX:,} characters")
    whose = "the team already keeps" if prompt.team_id else "you already keep"
    if SavedPrompt.objects.filter(**owner, name=prompt.name).exclude(id=prompt.id).exists():
        raise ValidationError(f"{whose} a prompt named /{prompt.name}")
    prompt.full_clean(exclude=["user", "team"], validate_constraints=False)  # the name was checked just above
    try:
        with transaction.atomic():
            prompt.save()
    except IntegrityError:  # the same name saved at the same moment elsewhere
        raise ValidationError(f"{whose} a prompt named /{prompt.name}") from None
    return prompt


def prompt_delete(*, user, prompt_id) -> None:
    if not _prompts_editable(user).filter(id=prompt_id).delete()[0]:
        raise NotFound("no such prompt")


def conversation_model_set(*, conversation: Conversation, model: str) -> Conversation:
    """The chat model the conversation's next answers are written by ("" for the default);
    UnknownModel for one not offered. Not activity: its place in the list stays."""
    conversation.model = _model_checked(model)
    conversation.save(update_fields=["model"])
    return conversation


def conversation_archive(*, conversation: Conversation, archived: bool) -> Conversation:
    """Archive (out of the list, and unpinned) or bring back; not activity, so `updated_at` stays.
    A question asked in an archived conversation brings it back too."""
    if archived != (conversation.archived_at is not None):
        conversation.archived_at = timezone.now() if archived else None
        if archived:
            conversation.pinned_at = None
        conversation.save(update_fields=["archived_at", "pinned_at"])
    return conversation


def conversation_pin(*, conversation: Conversation, pinned: bool) -> Conversation:
    """Pin or unpin; not a change to the conversation, so its place among the unpinned stays."""
    if pinned != (conversation.pinned_at is not None):
        conversation.pinned_at = timezone.now() if pinned else None
        conversation.save(update_fields=["pinned_at"])
    return conversation


_SHARE_FIELDS = ["share_token", "shared_at", "shared_messages", "shared_collections"]


def conversation_share(*, conversation: Conversation) -> str:
    """The conversation's share token, made on the first share. The link shows a copy of the
    conversation as the owner sees it now (the versions shown), renewed by each share: what the owner asks or edits after sharing stays
    theirs until they share again. An answer still being written is left out rather than frozen half
    way. (`updated_at` is left alone: sharing does not move it up their list.)"""
    messages = [
        m
        for m in selectors.conversation_thread(conversation=conversation)
        if m.role == Message.Role.USER or m.status in Message.FINAL
    ]
    renewed = conversation.share_token is not None  # shared again: the link shows it as it is now
    conversation.share_token = conversation.share_token or secrets.token_urlsafe(16)
    conversation.shared_at = timezone.now()
    conversation.shared_messages = [selectors.message_out(m) for m in messages]
    conversation.shared_collections = sorted(
        {
            s["collection_id"]
            for m in messages
            for s in [*(m.citations or []), *(m.sources or [])]
            if s.get("collection_id") is not None
        }
    )
    with transaction.atomic():
        conversation.save(update_fields=_SHARE_FIELDS)
        audit.record(
            "conversation_share",
            actor=conversation.owner,
            target=conversation,
            name=conversation.title,
            details={"collections": conversation.shared_collections, "renewed": renewed},
        )
    return conversation.share_token


def conversation_unshare(*, conversation: Conversation) -> None:
    was_shared = conversation.share_token is not None
    conversation.share_token, conversation.shared_at = None, None
    conversation.shared_messages, conversation.shared_collections = None, []
    with transaction.atomic():
        conversation.save(update_fields=_SHARE_FIELDS)
        if was_shared:
            audit.record(
                "conversation_unshare", actor=conversation.owner, target=conversation, name=conversation.title
            )


class FolderExists(ValueError):
    """The person has a folder of that name already (in any case)."""


FOLDER_NAME_MAX = Folder._meta.get_field("name").max_length


def _folder_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValueError("a folder needs a name")
    if len(name) > FOLDER_NAME_MAX:
        raise ValueError(f"a folder's name is at most {FOLDER_NAME_MAX} characters")
    return name


def _folder_saved(folder: Folder, **save) -> Folder:
    try:
        with transaction.atomic():
            folder.save(**save)
    except IntegrityError:
        raise FolderExists(f"you have a folder named {folder.name!r} already") from None
    return folder


def folder_create(*, user, name: str) -> Folder:
    """A new folder of the user's; ValueError for a blank or too long name, FolderExists for one
    they use already."""
    return _folder_saved(Folder(owner=user, name=_folder_name(name)))


def folder_update(
    *,
    folder: Folder,
    name: str | None = None,
    instructions: str | None = None,
    collection_ids: list[int] | None = None,
) -> Folder:
    """Rename the folder, or change what its conversations follow: `instructions` (with every question
    asked in them) and `collection_ids` (what one started in it searches; [] for all). ValueError for
    a bad name, instructions too long, or a collection the owner may not read (all or nothing)."""
    fields = []
    if name is not None:
        folder.name = _folder_name(name)
        fields.append("name")
    if instructions is not None:
        instructions = instructions.strip()
        if len(instructions) > Folder.INSTRUCTIONS_MAX:
            raise ValueError(f"a folder's instructions are at most {Folder.INSTRUCTIONS_MAX} characters")
        folder.instructions = instructions
        fields.append("instructions")
    if collection_ids is not None:
        unknown = sorted(
            set(collection_ids) - set(retrieval_selectors.collection_ids_for_user(user=folder.owner))
        )
        if unknown:
            raise ValueError(f"no collection {unknown[0]} that you may read")
    with transaction.atomic():
        if fields:
            _folder_saved(folder, update_fields=fields)
        if collection_ids is not None:
            folder.collections.set(collection_ids)
    return folder


def folder_delete(*, folder: Folder) -> None:
    """The folder; its conversations stay, out of any folder."""
    folder.delete()


def conversation_move(*, conversation: Conversation, folder: Folder | None) -> Conversation:
    """Into one of its owner's folders, or out of any (None). Not activity: `updated_at` stays."""
    if folder is not None and folder.owner_id != conversation.owner_id:
        raise NotFound("no such folder")
    conversation.folder = folder
    conversation.save(update_fields=["folder"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


def conversations_expire(*, batch: int = 500, budget_s: float = 60.0) -> int:
    """Delete the conversations untouched for DOCENT_CONVERSATION_RETENTION_DAYS (none when 0), a
    batch per transaction, for at most about `budget_s` (the next run goes on): how many. Recorded
    in the audit log as the system's."""
    days = settings.DOCENT_CONVERSATION_RETENTION_DAYS
    if not days:
        return 0
    before = timezone.now() - timezone.timedelta(days=days)
    deadline, total = time.monotonic() + budget_s, 0
    while time.monotonic() < deadline:
        with transaction.atomic():
            ids = list(
                Conversation.objects.filter(updated_at__lt=before).values_list("id", flat=True)[:batch]
            )
            if not ids:
                break
            _total, deleted = Conversation.objects.filter(id__in=ids).delete()
            total += deleted.get(Conversation._meta.label, 0)
    if total:
        log.info("%d conversations untouched for %d days deleted", total, days)
        audit.record("conversations_expire", details={"conversations": total, "days": days})
    return total


def conversations_delete_all(*, user) -> int:
    """Delete every conversation of the user (messages, feedback and shared links with them; the
    tokens spent stay counted): how many there were."""
    _total, deleted = Conversation.objects.filter(owner=user).delete()
    return deleted.get(Conversation._meta.label, 0)
