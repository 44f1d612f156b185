"""Login passwords at rest: scrypt with a random salt, compared in constant time.

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt>$<key>`` (salt and key URL-safe base64), so
the cost parameters can be raised later without breaking hashes already stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_MAXMEM = 64 * 1024 * 1024
_SCHEME = "scrypt"


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=_KEY_BYTES
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def hash_password(password: str) -> str:
    """A new salted hash of ``password``; never the same twice for the same password."""
    salt = os.urandom(_SALT_BYTES)
    key = _derive(password, salt, _N, _R, _P)
    return f"{_SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``.

    With ``stored`` None (no such user) or unreadable, a hash is still computed, so the
    answer takes as long as for a real user's wrong password, and is False.
    """
    parsed = _parse(stored) if stored else None
    if parsed is None:
        _derive(password, b"\0" * _SALT_BYTES, _N, _R, _P)
        return False
    n, r, p, salt, key = parsed
    try:
        derived = _derive(password, salt, n, r, p)
    except ValueError:  # cost parameters hashlib refuses: not a hash this module wrote
        return False
    return hmac.compare_digest(derived, key)


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return None
    try:
        n, r, p = (int(x) for x in parts[1:4])
        return n, r, p, base64.urlsafe_b64decode(parts[4]), base64.urlsafe_b64decode(parts[5])
    except ValueError:
        return None
