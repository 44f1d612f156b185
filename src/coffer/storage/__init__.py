"""Object stores for backups: a local directory, OpenStack Swift or S3.

``open_store(config)`` picks the implementation named by ``config.kind``. Each one is
imported only when asked for, so the directory store needs neither python-swiftclient nor
boto3.
"""

from __future__ import annotations

from collections.abc import Callable

from coffer.errors import BadRequest
from coffer.storage.base import ObjectStore, StoreConfig, check_key

__all__ = ["ObjectStore", "StoreConfig", "check_key", "known_stores", "open_store"]


def _directory(config: StoreConfig) -> ObjectStore:
    from coffer.storage.filesystem import DirectoryStore

    return DirectoryStore.from_config(config)


def _swift(config: StoreConfig) -> ObjectStore:
    from coffer.storage.swift import SwiftStore

    return SwiftStore(config)


def _s3(config: StoreConfig) -> ObjectStore:
    from coffer.storage.s3 import S3Store

    return S3Store(config)


#: store kind → opener; each opener imports its implementation lazily.
_REGISTRY: dict[str, Callable[[StoreConfig], ObjectStore]] = {
    "directory": _directory,
    "swift": _swift,
    "s3": _s3,
}


def known_stores() -> list[str]:
    return sorted(_REGISTRY)


def open_store(config: StoreConfig) -> ObjectStore:
    """The store ``config`` describes. Does no I/O; raises ``BadRequest`` for an unusable
    config (unknown kind, relative directory, missing credentials)."""
    try:
        opener = _REGISTRY[config.kind]
    except KeyError:
        raise BadRequest(
            f"no object store kind {config.kind!r}; known: {', '.join(known_stores())}"
        ) from None
    return opener(config)
