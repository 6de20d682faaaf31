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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    checker: str
    categories: tuple[str, ...]
    rule_id: int | None = None


class Blocked(Exception):
    def __init__(self, verdict: Verdict):
        self.verdict = verdict
        what = ", ".join(verdict.categories) or "policy"
        super().__init__(
            f"This question was not answered: it goes against your organisation's content policy ({what})."
        )


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
    # moneyball", and a phrase keeps matching when the question wraps a line.
    words = [re.escape(w) for w in pattern.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


class Checker(abc.ABC):
    name: str

    @abc.abstractmethod
    async def check(self, text: str) -> Verdict | None:
        """A verdict when the text is flagged, else None; raises when it cannot tell."""


class RulesChecker(Checker):
    """Admins' rules, compiled and kept for `ttl` seconds (a rule saved in this process applies at once,
    see `rules_changed`; other processes pick it up within the ttl)."""

    name = "rules"

    def __init__(self, rows, ttl: float = 30.0):
        self.rows = rows  # () -> [(id, kind, pattern, category)] of the enabled rules
        self.ttl = ttl
        self._rules: list[tuple[int, str, re.Pattern]] | None = None
        self._loaded_at = 0.0

    def invalidate(self) -> None:
        self._rules = None

    def _load(self) -> list[tuple[int, str, re.Pattern]]:
        rules = []
        for rule_id, kind, pattern, category in self.rows():
            try:
                rules.append((rule_id, category, compile_rule(kind, pattern)))
            except ValueError:
                log.warning("moderation rule %s is invalid and was skipped", rule_id)
        return rules

    async def check(self, text: str) -> Verdict | None:
        if self._rules is None or time.monotonic() - self._loaded_at > self.ttl:
            self._rules = await database_sync_to_async(self._load)()
            self._loaded_at = time.monotonic()
        for rule_id, category, matcher in self._rules:
            if matcher.search(text):
                return Verdict(self.name, (category,), rule_id)
        return None


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
                RulesChecker(moderation_rules_enabled, ttl=settings.DOCENT_MODERATION_RULES_TTL_S)
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


def rules_changed(**_) -> None:
    """Signal receiver: a rule was saved or deleted in this process. The cache is dropped once the
    change is committed (Django admin saves inside a transaction): a reload before the commit would
    keep the old rules for a whole ttl."""
    from django.db import transaction

    for checker in get_checkers():
        if isinstance(checker, RulesChecker):
            transaction.on_commit(checker.invalidate)


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
