"""The local-directory object store: one file per object under a root directory.

A key ``a/b/c`` is the file ``<root>/a/b/c``. Files are mode 0600 and directories 0700
(backups hold tenant data). A put streams into a hidden temporary file next to its
target (``.coffer-tmp-*``: never listed, and no key may use that prefix), fsyncs it,
renames it over the target and fsyncs the directory, so readers see either the old
object or the whole new one, and a crash leaves at worst a temporary file. Because keys
are paths, one key cannot be both an object and a prefix of another (``a`` and ``a/b``):
such a put fails with ``StorageError`` and changes nothing. Deleting an object removes
the directories it leaves empty (up to the root). A purge of ``a/b/`` removes the whole
directory ``<root>/a/b`` (objects, temporary files, empty directories a crashed put
made) and then the parents it leaves empty.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from coffer.errors import BadRequest, StorageError, StorageNotFound
from coffer.storage.base import Source, StoreConfig, check_key, check_prefix

TEMP_PREFIX = ".coffer-tmp-"
READ_CHUNK = 1 << 20


class DirectoryStore:
    """Objects as files under ``root`` (an absolute path; created on the first put).

    Stateless apart from ``root``: safe to share between threads and processes.
    """

    def __init__(self, root: str | Path) -> None:
        path = Path(root)
        if not path.is_absolute():
            raise BadRequest(f"directory store location {str(root)!r} is not an absolute path")
        self.root = path

    @classmethod
    def from_config(cls, config: StoreConfig) -> DirectoryStore:
        return cls(config.location)

    def describe(self) -> str:
        return f"directory {str(self.root)!r}"

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        target = self._path(key)
        fd, temp = self._open_temp(key, target)
        source = Source(chunks)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in source:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
            _fsync_dir(target.parent)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if source.error is not None or not isinstance(exc, OSError):
                raise
            if isinstance(exc, IsADirectoryError):
                raise self._collision(key, f"{key!r} is a prefix of other keys") from exc
            raise self._error("store", key, exc) from exc
        return source.size

    def _open_temp(self, key: str, target: Path) -> tuple[int, str]:
        """A new 0600 temporary file in the target's directory, creating directories."""
        for _ in range(3):  # a concurrent delete may prune a directory we just made
            try:
                self._make_dirs(target.parent, key)
                return tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
            except FileNotFoundError:
                continue
            except NotADirectoryError as exc:
                raise self._collision(key, "one of its prefixes is an object") from exc
            except OSError as exc:
                raise self._error("store", key, exc) from exc
        raise StorageError(f"{self.describe()}: cannot store {key!r}: its directory vanished")

    def _make_dirs(self, directory: Path, key: str) -> None:
        """Create ``directory`` and its missing parents (0700), fsyncing each new entry."""
        missing: list[Path] = []
        current = directory
        while not current.exists():
            missing.append(current)
            current = current.parent
        if not current.is_dir():
            taken = current.relative_to(self.root).as_posix()
            raise self._collision(key, f"{taken!r} is an object")
        for path in reversed(missing):
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                if not path.is_dir():
                    raise NotADirectoryError(path) from None
            _fsync_dir(path.parent)

    def get(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - the generator closes it
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                handle.close()
                raise self._not_found(key)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._not_found(key) from None
        except OSError as exc:
            raise self._error("read", key, exc) from exc
        return _read_chunks(handle)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return  # missing, or only a prefix of other keys: nothing to delete
        except OSError as exc:
            raise self._error("delete", key, exc) from exc
        _fsync_dir(path.parent)
        self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        """Remove now-empty directories from ``directory`` up to (not including) the root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def exists(self, key: str) -> bool:
        try:
            return stat.S_ISREG(self._path(key).stat().st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise self._error("look up", key, exc) from exc

    def size(self, key: str) -> int:
        try:
            info = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise self._not_found(key) from None
        except OSError as exc:
            raise self._error("look up", key, exc) from exc
        if not stat.S_ISREG(info.st_mode):
            raise self._not_found(key)
        return info.st_size

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []  # nothing stored yet
        keys: list[str] = []
        try:
            for directory, subdirs, files in os.walk(self.root, onerror=_raise_unless_gone):
                rel = os.path.relpath(directory, self.root)
                base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
                # descend only into directories that can hold a key starting with prefix
                subdirs[:] = [d for d in subdirs if _may_hold(base + d + "/", prefix)]
                keys.extend(
                    base + name
                    for name in files
                    if not name.startswith(TEMP_PREFIX) and (base + name).startswith(prefix)
                )
        except OSError as exc:
            raise self._error("list", prefix or "(all keys)", exc) from exc
        return sorted(keys)

    def purge(self, prefix: str) -> int:
        """Remove the directory ``prefix`` names with everything in it (hidden temporary
        files included); returns how many files were removed. Directories a concurrent
        delete prunes meanwhile are skipped."""
        check_prefix(prefix)
        top = self._path(prefix[:-1])
        if not top.is_dir() or top.is_symlink():
            return 0  # nothing stored under prefix (or only the object ``prefix[:-1]``)
        removed = 0
        try:
            for directory, subdirs, files in os.walk(
                top, topdown=False, onerror=_raise_unless_gone
            ):
                for name in files + [d for d in subdirs if os.path.islink(Path(directory, d))]:
                    removed += _unlink_if_there(Path(directory, name))
                for name in subdirs:
                    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                        Path(directory, name).rmdir()
            with contextlib.suppress(FileNotFoundError):
                top.rmdir()
        except OSError as exc:
            raise self._error("purge", prefix, exc) from exc
        with contextlib.suppress(FileNotFoundError):  # pruned by a concurrent delete
            _fsync_dir(top.parent)
        self._prune(top.parent)
        return removed

    def _path(self, key: str) -> Path:
        check_key(key)
        if any(segment.startswith(TEMP_PREFIX) for segment in key.split("/")):
            raise BadRequest(f"object key {key!r} uses the reserved prefix {TEMP_PREFIX!r}")
        return self.root.joinpath(*key.split("/"))

    def _error(self, action: str, key: str, exc: OSError) -> StorageError:
        return StorageError(f"{self.describe()}: cannot {action} {key!r}: {exc.strerror or exc}")

    def _collision(self, key: str, why: str) -> StorageError:
        return StorageError(
            f"{self.describe()}: cannot store {key!r}: {why} "
            "(a directory store cannot hold both 'a' and 'a/b')"
        )

    def _not_found(self, key: str) -> StorageNotFound:
        return StorageNotFound(f"{self.describe()} has no object {key!r}")


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(READ_CHUNK):
            yield chunk


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_if_there(path: Path) -> int:
    """1 if ``path`` was removed, 0 if it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1


def _may_hold(directory_prefix: str, prefix: str) -> bool:
    return directory_prefix.startswith(prefix) or prefix.startswith(directory_prefix)


def _raise_unless_gone(exc: OSError) -> None:
    """os.walk's error hook: a directory pruned by a concurrent delete is just skipped."""
    if not isinstance(exc, FileNotFoundError):
        raise exc
