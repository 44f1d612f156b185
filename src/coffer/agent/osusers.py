"""One unprivileged OS account per instance, created and removed by the agent.

Accounts are named ``cf-<first 12 hex digits of the instance id>`` and carry a comment
naming the agent state directory that owns them, so ``sweep`` can remove the accounts of
instances that no longer exist (after a crash, or a test run that left them behind).
"""

from __future__ import annotations

import logging
import pwd
import subprocess
import time
from pathlib import Path

from coffer.errors import EngineError

log = logging.getLogger("coffer.agent.osusers")

_PREFIX = "cf-"
_COMMENT = "coffer instance"
#: useradd/userdel fail while another process holds /etc/passwd's lock
_LOCK_RETRIES = 50


def account_name(instance_id: str) -> str:
    return _PREFIX + instance_id.replace("-", "")[:12]


def ensure_account(instance_id: str, owner_dir: Path) -> str:
    """Create the instance's account if it does not exist (idempotent); return its name."""
    name = account_name(instance_id)
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        pass
    comment = f"{_COMMENT} {instance_id} {owner_dir}"
    argv = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    _run(
        [*argv, "--shell", "/usr/sbin/nologin", "--comment", comment, name],
        what="useradd",
        exists_ok=9,
    )
    return name


def remove_account(instance_id: str) -> None:
    """Remove the instance's account (idempotent). Its processes must be gone."""
    name = account_name(instance_id)
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    # Engine children may still be exiting after their server stopped: end them now.
    kill_processes(instance_id)
    # exit 8: a process of the account is still exiting; retry
    for _ in range(100):
        try:
            _run(["userdel", name], what="userdel", exists_ok=6)
            return
        except EngineError as exc:
            if "exit 8" not in exc.message:
                raise
        time.sleep(0.1)
    raise EngineError(f"userdel {name}: the account still has running processes")


def kill_processes(instance_id: str) -> None:
    """SIGKILL every process running as the instance's account (if it exists)."""
    subprocess.run(
        ["pkill", "-KILL", "-u", account_name(instance_id)], capture_output=True, check=False
    )


def sweep(owner_dir: Path, live: set[str]) -> list[str]:
    """Remove accounts owned by ``owner_dir`` whose instance is not in ``live``."""
    removed = []
    for entry in pwd.getpwall():
        parts = entry.pw_gecos.split(" ")
        if not entry.pw_name.startswith(_PREFIX) or " ".join(parts[:2]) != _COMMENT:
            continue
        if len(parts) >= 4 and parts[3] == str(owner_dir) and parts[2] not in live:
            remove_account(parts[2])
            removed.append(entry.pw_name)
    return removed


def _run(argv: list[str], *, what: str, exists_ok: int) -> None:
    """Run a shadow-utils command, retrying while /etc/passwd is locked by another."""
    for _ in range(_LOCK_RETRIES):
        res = subprocess.run(argv, capture_output=True, text=True, check=False)
        if res.returncode in (0, exists_ok):
            return
        if "lock" not in res.stderr.lower():
            raise EngineError(f"{what} failed (exit {res.returncode}): {res.stderr.strip()[-300:]}")
        time.sleep(0.1)
    raise EngineError(f"{what} failed: /etc/passwd stayed locked")
