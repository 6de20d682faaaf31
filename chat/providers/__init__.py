"""Chat models behind one small interface, chosen by settings: OpenAI-compatible when a provider is
configured (OPENAI_API_KEY or OPENAI_BASE_URL), otherwise the offline extractive answerer."""

from __future__ import annotations

import functools

from .base import ChatModel, Delta, Finish, ProviderError, StreamInterrupted


def chat_models() -> list[str]:
    """The models people may choose between, the default first: none offline (the extractive
    answerer is the only one), else DOCENT_CHAT_MODEL and DOCENT_CHAT_MODELS."""
    from django.conf import settings

    if not (settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL):
        return []
    return list(dict.fromkeys([settings.DOCENT_CHAT_MODEL, *settings.DOCENT_CHAT_MODELS]))


@functools.cache
def get_chat_model(name: str | None = None) -> ChatModel:
    """The chat model `name` (one of `chat_models()`), else the default one."""
    from django.conf import settings

    if settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL:
        from .openai_compat import OpenAIChatModel

        return OpenAIChatModel(
            model=name if name in chat_models() else settings.DOCENT_CHAT_MODEL,
            api_key=settings.OPENAI_API_KEY or "not-needed",
            base_url=settings.OPENAI_BASE_URL or None,
            connect_timeout=settings.DOCENT_PROVIDER_CONNECT_TIMEOUT_S,
            first_token_timeout=settings.DOCENT_PROVIDER_FIRST_TOKEN_S,
            total_timeout=settings.DOCENT_PROVIDER_TIMEOUT_S,
            max_retries=settings.DOCENT_PROVIDER_MAX_RETRIES,
            retry_after_cap=settings.DOCENT_RETRY_AFTER_CAP_S,
        )
    from retrieval.embeddings import get_embedder

    from .extractive import ExtractiveAnswerer

    return ExtractiveAnswerer(embed=get_embedder().embed)


__all__ = [
    "ChatModel",
    "Delta",
    "Finish",
    "ProviderError",
    "StreamInterrupted",
    "chat_models",
    "get_chat_model",
]
