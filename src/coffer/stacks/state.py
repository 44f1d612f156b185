"""A stack's state file: which physical resource each template resource is.

Stacks are identified by name within a project. The file is
``<data-dir>/stacks/<project-id>/<stack>.json``, mode 0600, written atomically (a
temporary file renamed over it) each time a resource is created, updated or deleted, so
an interrupted apply leaves a file naming everything it made. It records, per resource,
the id, type, the resources it depended on (delete order), and the databases and users
(``name@host`` → scrypt digest of the password) its template declared. No password is
stored. Renaming an instance does not lose it: resources are found by id, not name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coffer.stacks.errors import StateError
from coffer.stacks.plan import RecordedResource
from coffer.stacks.resources import ResourceType
from coffer.stacks.template import validate_stack_name

__all__ = ["FORMAT_VERSION", "StateStore"]

FORMAT_VERSION = 1


def _record(name: str, data: Any, path: Path) -> RecordedResource:
    try:
        users = data.get("users") or {}
        if not isinstance(users, dict):
            raise TypeError("users")
        return RecordedResource(
            id=str(data["id"]),
            type=ResourceType(data["type"]),
            depends_on=frozenset(map(str, data.get("depends_on") or ())),
            databases=frozenset(map(str, data.get("databases") or ())),
            users={str(k): str(v) for k, v in users.items()},
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        raise StateError(f"{path}: the entry of resource {name!r} is malformed") from None


def _entry(record: RecordedResource) -> dict[str, Any]:
    return {
        "id": record.id,
        "type": record.type.value,
        "depends_on": sorted(record.depends_on),
        "databases": sorted(record.databases),
        "users": dict(sorted(record.users.items())),
    }


class StateStore:
    """The state files of one project's stacks, under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def for_project(cls, data_dir: Path, project_id: str) -> StateStore:
        return cls(data_dir / "stacks" / project_id)

    def path(self, stack: str) -> Path:
        return self.directory / f"{validate_stack_name(stack)}.json"

    def exists(self, stack: str) -> bool:
        return self.path(stack).is_file()

    def load(self, stack: str) -> dict[str, RecordedResource]:
        """The recorded resources (empty when the stack has no file yet)."""
        path = self.path(stack)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise StateError(
                f"cannot read the state of stack {stack!r} from {path}: {exc}"
            ) from None
        if (
            not isinstance(data, dict)
            or data.get("version") != FORMAT_VERSION
            or not isinstance(data.get("resources"), dict)
        ):
            raise StateError(f"{path} is not a version {FORMAT_VERSION} stack state file")
        return {str(n): _record(str(n), v, path) for n, v in data["resources"].items()}

    def save(self, stack: str, records: Mapping[str, RecordedResource]) -> None:
        """Replace the stack's file atomically (mode 0600); raises ``StateError``."""
        path = self.path(stack)
        body = {
            "version": FORMAT_VERSION,
            "stack": stack,
            "resources": {name: _entry(r) for name, r in sorted(records.items())},
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{stack}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(body, out, indent=2)
                    out.write("\n")
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StateError(
                f"cannot write the state of stack {stack!r} to {path}: {exc}"
            ) from None

    def remove(self, stack: str) -> None:
        """Forget the stack (its file, and the project directory once empty)."""
        path = self.path(stack)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # other stacks of the project remain
            path.parent.rmdir()
