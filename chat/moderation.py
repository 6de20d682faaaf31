"""Moderation of questions before they reach a model, by the checkers DOCENT_MODERATION names.

`rules`: phrases and patterns admins keep in Django admin (offline, microseconds; the default).
`openai`: the provider's /v1/moderations endpoint (OpenAI's; most self-hosted servers have none).
A checker that cannot answer lets the question through unless DOCENT_MODERATION_FAIL_CLOSED is set:
an outage of the moderation endpoint should not silence a team's assistant by default.
"""

from __future__ import annotations

import abc
import functools
import logging
import re
import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings

from assistant import metrics
from retrieval import cjk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    checker: str
    categories: tuple[str, ...]
    rule_id: int | None = None
    subject: str = "question"  # or "answer"
    text: str | None = None  # for an answer: what had come of it, the part held back included


class Blocked(Exception):
    def __init__(self, verdict: Verdict):
        self.verdict = verdict
        what = ", ".join(verdict.categories) or "policy"
        if verdict.subject == "answer":
            message = f"The answer was stopped: it went against your organisation's content policy ({what})."
        else:
            message = f"This question was not answered: it goes against your organisation's content policy ({what})."
        super().__init__(message)


class Unavailable(Exception):
    """A checker failed and DOCENT_MODERATION_FAIL_CLOSED says not to answer unchecked."""


def compile_rule(kind: str, pattern: str) -> re.Pattern:
    """A rule's matcher; ValueError for an empty phrase or an invalid expression."""
    if not pattern.strip():
        raise ValueError("the pattern is empty")
    if kind == "regex":
        try:
            return re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    # Whole words, any case, any run of spaces between them: "wire money" does not match "firewire
    # moneyball", and a phrase keeps matching when the question wraps a line. Chinese and Japanese
    # have no spaces around words, and Korean attaches particles to them ("폭탄을"): at an edge in
    # those scripts the phrase matches inside the text.
    words = pattern.split()
    before = "" if cjk.RUN.match(words[0][0]) else r"(?<!\w)"
    after = "" if cjk.RUN.match(words[-1][-1]) else r"(?!\w)"
    return re.compile(before + r"\s+".join(map(re.escape, words)) + after, re.IGNORECASE)


class Checker(abc.ABC):
    name: str

    @abc.abstractmethod
    async def check(self, text: str) -> Verdict | None:
        """A verdict when the text is flagged, else None; raises when it cannot tell."""


class RulesChecker(Checker):
    """Admins' rules, compiled and kept in this process. A change bumps a version in the shared cache
    (`rules_changed`); every process compares it at most every `recheck` seconds, so a rule saved in
    one reaches all within about a second. `ttl` bounds the staleness when the cache cannot be read."""

    name = "rules"

    def __init__(self, rows, ttl: float = 30.0, *, version=None, recheck: float = 1.0):
        self.rows = rows  # () -> [(id, kind, pattern, category, applies_to)] of the enabled rules
        self.version = version  # async () -> the shared version, None when unknown
        self.ttl, self.recheck = ttl, recheck
        self._rules: dict[str, list[Rule]] | None = None
        self._loaded_at = self._checked_at = 0.0
        self._version_seen = None

    def invalidate(self) -> None:
        self._rules = None

    async def _shared_version(self):
        if self.version is None:
            return None
        try:
            return await self.version()
        except Exception as exc:  # cache away: the ttl still bounds how stale the rules get
            log.warning("moderation rules version could not be read: %s", exc)
            return None

    def _load(self) -> dict[str, list[Rule]]:
        rules: dict[str, list[Rule]] = {"question": [], "answer": []}
        for rule_id, kind, pattern, category, applies_to in self.rows():
            try:
                rule = Rule(
                    rule_id, category, compile_rule(kind, pattern), len(pattern) if kind == "phrase" else None
                )
            except ValueError:
                log.warning("moderation rule %s is invalid and was skipped", rule_id)
                continue
            for subject in ("question", "answer"):
                if applies_to in (subject, "both"):
                    rules[subject].append(rule)
        return rules

    async def rules(self, subject: str) -> list[Rule]:
        now = time.monotonic()
        if self._rules is not None and self.version is not None and now - self._checked_at > self.recheck:
            self._checked_at = now
            if await self._shared_version() != self._version_seen:
                self._rules = None
        if self._rules is None or now - self._loaded_at > self.ttl:
            # The version is read before the rows: a change committed meanwhile shows as a newer one.
            version = await self._shared_version()
            self._rules = await database_sync_to_async(self._load)()
            self._loaded_at = self._checked_at = time.monotonic()
            self._version_seen = version
        return self._rules[subject]

    async def check(self, text: str) -> Verdict | None:
        for rule in await self.rules("question"):
            if rule.matcher.search(text):
                return Verdict(self.name, (rule.category,), rule.id)
        return None


@dataclass(frozen=True)
class Rule:
    id: int
    category: str
    matcher: re.Pattern
    phrase_length: int | None  # None for a regular expression


class AnswerGate:
    """Holds back the newest `hold` characters of a streaming answer until they are checked against
    the answer rules, so that a match no longer than `hold` is never shown; a match raises Blocked.
    Each check reads only the new text and `hold` characters before it (lookbehinds see further)."""

    def __init__(self, rules: list[Rule], hold: int):
        self.rules, self.hold = rules, hold
        self.text = ""
        self.released = 0
        self.checked = 0

    def feed(self, text: str) -> str:
        """Add text; return what may be shown now."""
        self.text += text
        self._check()
        end = max(self.released, len(self.text) - self.hold)
        out, self.released = self.text[self.released : end], end
        return out

    def flush(self) -> str:
        """The answer ended: the rest, checked."""
        self._check()
        out, self.released = self.text[self.released :], len(self.text)
        return out

    def _check(self) -> None:
        start = max(0, self.checked - self.hold)
        for rule in self.rules:
            if rule.matcher.search(self.text, start):
                verdict = Verdict("rules", (rule.category,), rule.id, subject="answer", text=self.text)
                raise Blocked(verdict)
        self.checked = len(self.text)


class OpenAIChecker(Checker):
    name = "openai"

    def __init__(self, *, model: str, api_key: str, base_url: str | None, timeout: float):
        import openai

        self.model = model
        self.client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=1)

    async def check(self, text: str) -> Verdict | None:
        response = await self.client.moderations.create(model=self.model, input=text)
        result = response.results[0]
        if not result.flagged:
            return None
        # Read the categories as sent: servers other than OpenAI's send subsets of its list.
        sent = result.categories.model_dump(by_alias=True, exclude_unset=True)
        return Verdict(self.name, tuple(sorted(k for k, v in sent.items() if v)))


@functools.cache
def get_checkers() -> tuple[Checker, ...]:
    checkers: list[Checker] = []
    for name in settings.DOCENT_MODERATION:
        if name == "rules":
            from .selectors import moderation_rules_enabled

            checkers.append(
                RulesChecker(
                    moderation_rules_enabled,
                    ttl=settings.DOCENT_MODERATION_RULES_TTL_S,
                    version=rules_version,
                    recheck=settings.DOCENT_MODERATION_RULES_RECHECK_S,
                )
            )
        elif name == "openai":
            checkers.append(
                OpenAIChecker(
                    model=settings.DOCENT_MODERATION_MODEL,
                    api_key=settings.OPENAI_API_KEY or "not-needed",
                    base_url=settings.OPENAI_BASE_URL or None,
                    timeout=settings.DOCENT_MODERATION_TIMEOUT_S,
                )
            )
    return tuple(checkers)


async def answer_gate() -> AnswerGate | None:
    """A gate for an answer about to stream, or None while no rule applies to answers (then nothing
    is held back). The hold covers the longest phrase rule twice over (spacing varies) and at least
    DOCENT_MODERATION_ANSWER_HOLD_CHARS, which also bounds what a regular expression can match
    across the shown part."""
    for checker in get_checkers():
        if isinstance(checker, RulesChecker):
            try:
                rules = await checker.rules("answer")
            except Exception as exc:  # as for questions: rules that cannot be read let text through
                log.warning("answer rules could not be read: %s", exc)
                return None
            if not rules:
                return None
            longest = max((r.phrase_length or 0) for r in rules)
            return AnswerGate(rules, hold=max(settings.DOCENT_MODERATION_ANSWER_HOLD_CHARS, 2 * longest))
    return None


RULES_VERSION_KEY = "moderation:rules:version"


async def rules_version():
    from django.core.cache import cache

    return await cache.aget(RULES_VERSION_KEY)


def _rules_committed() -> None:
    import uuid

    from django.core.cache import cache

    for checker in get_checkers():
        if isinstance(checker, RulesChecker):
            checker.invalidate()
    try:
        cache.set(RULES_VERSION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception as exc:  # other processes then see the change within the ttl
        log.warning("moderation rules version could not be written: %s", exc)


def rules_changed(**_) -> None:
    """Signal receiver: a rule was saved or deleted. Once the change is committed (Django admin saves
    inside a transaction: a reload before the commit would keep the old rules), this process drops
    its rules and the shared version changes, for the other processes."""
    from django.db import transaction

    transaction.on_commit(_rules_committed)


async def screen(text: str) -> Verdict | None:
    """The first checker's verdict that flags the text (cheap checkers first), else None."""
    for checker in get_checkers():
        try:
            verdict = await checker.check(text)
        except Exception as exc:
            metrics.MODERATION_ERRORS.labels(checker=checker.name).inc()
            if settings.DOCENT_MODERATION_FAIL_CLOSED:
                raise Unavailable(
                    "the question could not be checked against the content policy; please try again"
                ) from exc
            log.warning("moderation by %s failed, question let through: %s", checker.name, exc)
            continue
        if verdict is not None:
            metrics.MODERATION_FLAGGED.labels(checker=checker.name).inc()
            return verdict
    return None
