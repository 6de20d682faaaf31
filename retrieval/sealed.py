"""Secrets kept in the database sealed (Fernet: AES with an HMAC), under a key derived from
SECRET_KEY, so a dump or a read-only database account does not give them away. SECRET_KEY_FALLBACKS
still open what older keys sealed: rotating the key does not lose them (they are sealed anew under
the current key when next set)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class Unreadable(Exception):
    """Sealed under a key this server no longer has (SECRET_KEY changed without a fallback)."""


def _fernet(secret: str) -> Fernet:
    digest = hashlib.sha256(f"docent-sealed:{secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _keys() -> MultiFernet:
    return MultiFernet([_fernet(k) for k in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]])


def seal(text: str) -> str:
    return _keys().encrypt(text.encode()).decode()


def unseal(token: str) -> str:
    try:
        return _keys().decrypt(token.encode()).decode()
    except InvalidToken:
        raise Unreadable("sealed under a secret key this server no longer has") from None
