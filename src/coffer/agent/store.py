"""The agent's own record of the instances it runs: one ``spec.json`` per instance.

It lets a restarted agent find and supervise its engines without asking the server.
"""

from __future__ import annotations

import os
from pathlib import Path

from coffer.agent.osusers import account_name
from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths


class InstanceStore:
    def __init__(self, instances_dir: Path) -> None:
        self.root = instances_dir
        self._dir = instances_dir
        self._dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self._dir, 0o755)

    def paths(self, instance_id: str) -> InstancePaths:
        return InstancePaths(self._dir / instance_id, os_user=account_name(instance_id))

    def save(self, spec: InstanceSpec) -> InstancePaths:
        paths = self.paths(spec.instance_id)
        paths.root.mkdir(parents=True, exist_ok=True)
        os.chmod(paths.root, 0o755)
        tmp = paths.root / "spec.json.tmp"
        tmp.write_text(spec.model_dump_json(indent=2))
        os.replace(tmp, paths.root / "spec.json")
        return paths

    def load(self, instance_id: str) -> InstanceSpec | None:
        try:
            return InstanceSpec.model_validate_json(
                (self.paths(instance_id).root / "spec.json").read_text()
            )
        except (OSError, ValueError):
            return None

    def all(self) -> list[InstanceSpec]:
        specs = []
        for entry in sorted(self._dir.iterdir()):
            spec = self.load(entry.name) if entry.is_dir() else None
            if spec is not None:
                specs.append(spec)
        return specs


def disk_usage_bytes(root: Path) -> int:
    """Bytes allocated under ``root`` (like ``du``); files vanishing meanwhile are skipped."""
    total = 0
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
        except OSError:
            continue
    return total
