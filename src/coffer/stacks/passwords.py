"""Salted digests of template passwords, so a stack's state file can tell a changed
password without holding it (scrypt; the plain password is never stored)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

__all__ = ["password_digest", "password_matches"]

_N, _R, _P = 2**12, 8, 1


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)


def password_digest(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$<salt>$<digest>`` (base64); a fresh random salt unless one is given."""
    salt = os.urandom(16) if salt is None else salt
    encode = base64.urlsafe_b64encode
    return f"scrypt${encode(salt).decode()}${encode(_scrypt(password, salt)).decode()}"


def password_matches(password: str, digest: str) -> bool:
    """Whether ``digest`` (from ``password_digest``) is of ``password``; False for a
    malformed digest."""
    scheme, _, rest = digest.partition("$")
    salt_text, _, hashed = rest.partition("$")
    if scheme != "scrypt" or not salt_text or not hashed:
        return False
    try:
        salt = base64.urlsafe_b64decode(salt_text)
        expected = base64.urlsafe_b64decode(hashed)
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(password, salt), expected)
