import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class Folder(models.Model):
    """A person's folder of conversations: the sidebar lists each folder's conversations under its
    name, after the pinned ones. Deleting it keeps its conversations, out of any folder.

    Like a project: its `instructions` go with every question asked in its conversations (after the
    person's own), and a conversation started in it searches its `collections` (none: all)."""

    INSTRUCTIONS_MAX = 1500

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    instructions = models.TextField(blank=True, max_length=INSTRUCTIONS_MAX)
    collections = models.ManyToManyField("retrieval.Collection", blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = [Lower("name"), "id"]
        constraints = [
            models.UniqueConstraint("owner", Lower("name"), name="folder_unique_owner_name"),
        ]

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    # The collections in scope; none means every collection the owner may read.
    collections = models.ManyToManyField("retrieval.Collection", blank=True, related_name="+")
    # Narrowed further to these documents ("Ask about this document"); a deleted one drops out.
    documents = models.ManyToManyField("retrieval.Document", blank=True, related_name="+")
    # Set while shared: /shared/<token>/ shows it, read-only, to whoever may read every passage it
    # cites. A new link is a new token, so stopping a share ends the old link for good.
    share_token = models.CharField(max_length=32, unique=True, null=True, blank=True, editable=False)
    shared_at = models.DateTimeField(null=True, blank=True, editable=False)
    # What the link shows, copied at the share (an edit or a follow-up afterwards is not shared until
    # the owner shares again), and every collection its answers drew on, cited or only given.
    shared_messages = models.JSONField(null=True, blank=True, editable=False)
    shared_collections = models.JSONField(default=list, blank=True, editable=False)
    # Pinned conversations head the owner's list, most recently pinned first.
    pinned_at = models.DateTimeField(null=True, blank=True)
    # Archived: out of the owner's list (kept, found on their account page) until asked in again.
    archived_at = models.DateTimeField(null=True, blank=True)
    # The chat model its answers are written by, chosen by the owner; empty: the default one.
    model = models.CharField(max_length=200, blank=True)
    folder = models.ForeignKey(
        Folder, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent")]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.id}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        STREAMING = "streaming", "Streaming"
        COMPLETE = "complete", "Complete"
        STOPPED = "stopped", "Stopped"
        INTERRUPTED = "interrupted", "Interrupted"
        FAILED = "failed", "Failed"
        REFUSED = "refused", "Refused"

    FINAL = (Status.COMPLETE, Status.STOPPED, Status.INTERRUPTED, Status.FAILED, Status.REFUSED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField(blank=True, default="")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.COMPLETE)
    # The user message an answer replies to.
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="answers"
    )
    # The answer a question follows (null for a conversation's first questions). Conversations are
    # trees: an edited question is a new sibling, and a regenerated answer starts a branch of its own,
    # so that each version keeps the exchanges that followed it.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="followups"
    )
    request_id = models.CharField(max_length=100, blank=True, default="")
    search_query = models.TextField(blank=True, default="")
    sources = models.JSONField(default=list, blank=True, help_text="Passages given to the model")
    citations = models.JSONField(default=list, blank=True, help_text="Passages the answer really cites")
    checks = models.JSONField(
        default=list, blank=True, help_text="Citations whose passage lacks a figure the answer states there"
    )
    finish_reason = models.CharField(max_length=20, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    retrieval_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    provider_ms = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Touched at every checkpoint; the sweep marks a streaming answer whose heartbeat went quiet as interrupted.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the reader last turned to this version (of a question's answers, or of the questions
    # following one answer). Of versions, the one chosen or made last is shown.
    chosen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "request_id"],
                condition=Q(role="user") & ~Q(request_id=""),
                name="message_unique_user_request",
            ),
            # A regeneration's or an edit's answer, by the request that started it.
            models.UniqueConstraint(
                fields=["user", "request_id"],
                condition=Q(role="assistant") & ~Q(request_id=""),
                name="message_unique_user_answer_request",
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="message_conversation_time"),
            models.Index(
                fields=["status", "heartbeat_at"],
                name="message_unfinished",
                condition=Q(status__in=["pending", "streaming"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"


class Preferences(models.Model):
    """What a person asks of every answer written for them ("Answer briefly", "I work in the Berlin
    office"): given to the model under the rules and the teams' instructions."""

    INSTRUCTIONS_MAX = 1500

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    instructions = models.TextField(blank=True, max_length=INSTRUCTIONS_MAX)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "preferences"

    def __str__(self) -> str:
        return f"Preferences of {self.user}"


class SavedPrompt(models.Model):
    """A question or request kept to ask again: "/name" in the chat's box puts its text there, to
    send as it is or finish first. A person's own (`user`), or a team's (`team`: every member may
    use it, its admins keep it)."""

    NAME_MAX = 40
    TEXT_MAX = 4000

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    team = models.ForeignKey(
        "retrieval.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="prompts"
    )
    name = models.CharField(
        max_length=NAME_MAX,
        validators=[
            RegexValidator(
                r"^[a-z0-9][a-z0-9_-]*$",
                "a name is lower-case letters, digits, - and _ (it is typed after /)",
            )
        ],
    )
    text = models.TextField(max_length=TEXT_MAX)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="savedprompt_unique_user_name"),
            models.UniqueConstraint(fields=["team", "name"], name="savedprompt_unique_team_name"),
            models.CheckConstraint(
                condition=models.Q(user__isnull=True) ^ models.Q(team__isnull=True),
                name="savedprompt_user_or_team",
            ),
        ]

    def __str__(self) -> str:
        return f"/{self.name}"


class Feedback(models.Model):
    # What can be wrong with an answer, as the reader picks it under "Not helpful" (code: words).
    REASONS = {
        "inaccurate": "Not accurate",
        "incomplete": "Incomplete",
        "sources": "Wrong or missing sources",
        "off_question": "Did not answer the question",
        "hard_to_read": "Too long or hard to read",
    }
    COMMENT_MAX = 2000

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rating = models.SmallIntegerField(choices=[(1, "Helpful"), (-1, "Not helpful")])
    reasons = models.JSONField(default=list, blank=True, help_text="Codes of Feedback.REASONS")
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="feedback_unique_message_user"),
            models.CheckConstraint(condition=Q(rating__in=[1, -1]), name="feedback_rating_pm1"),
        ]

    def __str__(self) -> str:
        return f"{'+' if self.rating > 0 else '-'} {self.message_id}"


class Usage(models.Model):
    """Tokens spent on one answer, chat or API: the ledger quotas and /api/v1/usage read.

    Kept apart from messages, so that deleting a conversation (or an API call, which stores no
    conversation) does not give tokens back.
    """

    class Source(models.TextChoices):
        CHAT = "chat", "Chat"
        API = "api", "OpenAI-compatible API"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=10, choices=Source.choices)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    model = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "created_at"], name="usage_user_time")]
        constraints = [
            models.UniqueConstraint(fields=["message"], name="usage_unique_message"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.prompt_tokens}+{self.completion_tokens}"


class Budget(models.Model):
    """A user's own monthly token quota, set by an admin; without one, DOCENT_MONTHLY_TOKEN_QUOTA holds."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    monthly_tokens = models.PositiveBigIntegerField(
        help_text="Tokens per calendar month (UTC); 0 means unlimited."
    )
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user}: {self.monthly_tokens or 'unlimited'}"


class ModerationRule(models.Model):
    """A phrase or pattern an admin does not want asked, or answered: questions are checked before any
    model sees them, answers as they stream (DOCENT_MODERATION includes `rules`, the default)."""

    class Kind(models.TextChoices):
        PHRASE = "phrase", "Phrase (whole words, any case)"
        REGEX = "regex", "Regular expression (any case)"

    class AppliesTo(models.TextChoices):
        QUESTION = "question", "Questions"
        ANSWER = "answer", "Answers"
        BOTH = "both", "Questions and answers"

    pattern = models.CharField(max_length=500)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PHRASE)
    applies_to = models.CharField(
        max_length=10,
        choices=AppliesTo.choices,
        default=AppliesTo.QUESTION,
        help_text="Answers are held back a few words while they stream, only while answer rules exist.",
    )
    category = models.SlugField(max_length=50, default="policy", help_text="Shown to the user and in flags.")
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["category", "pattern"]
        constraints = [models.UniqueConstraint(fields=["kind", "pattern"], name="moderationrule_unique")]

    def __str__(self) -> str:
        return f"{self.category}: {self.pattern}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .moderation import compile_rule

        try:
            compile_rule(self.kind, self.pattern)
        except ValueError as exc:
            raise ValidationError({"pattern": str(exc)}) from None


class ModerationFlag(models.Model):
    """A question refused, or an answer stopped, by moderation, for admins to review."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=10, choices=Usage.Source.choices)
    subject = models.CharField(
        max_length=10, choices=[("question", "Question"), ("answer", "Answer")], default="question"
    )
    # The question in its conversation (chat); API calls store no conversation.
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    text = models.TextField(help_text="The question, or the answer as far as it had come (shown or not).")
    checker = models.CharField(max_length=20, help_text="rules or openai")
    categories = models.JSONField(default=list)
    rule = models.ForeignKey(
        ModerationRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="flags"
    )
    reviewed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="moderationflag_user_time"),
            models.Index(
                fields=["created_at"], name="moderationflag_unreviewed", condition=Q(reviewed=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {', '.join(self.categories) or self.checker}"
