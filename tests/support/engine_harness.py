"""Shared harness of the engine integration tests: ports, workspace, engine, cleanup.

Each test module keeps what differs (its port range, its temp-dir prefix, its engine
builder, its ``Server`` class) and takes the rest from here:

- ``PortRange(low, high).take()``: a port in ``low..high`` (inclusive) that nothing on
  127.0.0.1 listens on right now and that was not handed out before; ``RuntimeError``
  when the whole range is used.
- ``workspace_fixture(prefix)``: a module-scoped ``workspace`` fixture, a fresh
  world-traversable (0755) ``/tmp/<prefix>*`` directory, removed at the end (engine
  accounts cannot reach pytest's private ``tmp_path``).
- ``engine_fixture(build_engine, engine_user)``: a module-scoped ``engine`` fixture whose
  templates live in ``<workspace>/templates``.
- ``Fleet``: remembers every server a factory made; ``close()`` runs every cleanup step
  of every server, even after failures, then raises the first failure.
- ``engine_marks(group, server_binary, missing)``: a module's ``pytestmark`` (xdist group,
  ``integration``, skip when the engine is missing or not run as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from coffer.engines.base import Engine

S = TypeVar("S")


class PortRange:
    """Ports ``low..high`` (inclusive) on 127.0.0.1, for one test module.

    The scan starts at an offset that differs per process (parallel workers rarely meet),
    and a port is never handed out twice: a server chosen a port but not yet listening
    must not see it handed to another.
    """

    def __init__(self, low: int, high: int) -> None:
        if high < low:
            raise ValueError(f"empty port range {low}-{high}")
        self.low = low
        self.high = high
        self._handed_out: set[int] = set()

    def take(self) -> int:
        size = self.high - self.low + 1
        start = (os.getpid() * 7) % size
        for offset in range(size):
            port = self.low + (start + offset) % size
            if port in self._handed_out:
                continue
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            self._handed_out.add(port)
            return port
        raise RuntimeError(f"no free port in {self.low}-{self.high}")


def workspace_fixture(prefix: str) -> Any:
    """A module-scoped ``workspace`` fixture: a 0755 ``/tmp/<prefix>*`` root, removed
    (with everything in it) at the end of the module."""

    @pytest.fixture(scope="module", name="workspace")
    def workspace() -> Iterator[Path]:
        root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        root.chmod(0o755)
        yield root
        shutil.rmtree(root, ignore_errors=True)

    return workspace


def engine_fixture(build_engine: Callable[..., Engine], engine_user: str) -> Any:
    """A module-scoped ``engine`` fixture: ``build_engine`` run as ``engine_user`` with
    its templates under ``<workspace>/templates``."""

    @pytest.fixture(scope="module", name="engine")
    def engine(workspace: Path) -> Engine:
        return build_engine(engine_user=engine_user, templates_dir=str(workspace / "templates"))

    return engine


class Fleet(Generic[S]):
    """The servers a fixture made, and how to clean each up.

    ``cleanup(server)`` gives the steps for one server, run in order (e.g. stop, kill,
    remove its account). ``close()`` runs every step of every server; a failing step does
    not skip the others, and the first failure is raised at the end.
    """

    def __init__(self, cleanup: Callable[[S], Sequence[Callable[[], object]]]) -> None:
        self._cleanup = cleanup
        self.servers: list[S] = []

    def add(self, server: S) -> S:
        self.servers.append(server)
        return server

    def close(self) -> None:
        failures: list[BaseException] = []
        for server in self.servers:
            for step in self._cleanup(server):
                try:
                    step()
                except Exception as exc:  # clean up the others, then report
                    failures.append(exc)
        if failures:
            raise failures[0]


def fleet_fixture(
    name: str,
    make: Callable[..., S],
    cleanup: Callable[[S], Sequence[Callable[[], object]]],
) -> Any:
    """A module-scoped fixture ``name``: a factory ``(server_name, *args)`` returning
    ``make(engine, <workspace>/<server_name>, *args)``; every server made is cleaned up
    by ``cleanup`` at the end of the module (see ``Fleet``)."""

    @pytest.fixture(scope="module", name=name)
    def fixture(workspace: Path, engine: Engine) -> Iterator[Callable[..., S]]:
        fleet: Fleet[S] = Fleet(cleanup)

        def factory(server_name: str, *args: Any) -> S:
            return fleet.add(make(engine, workspace / server_name, *args))

        yield factory
        fleet.close()

    return fixture


def engine_marks(group: str, server_binary: Path, missing: str) -> list[pytest.MarkDecorator]:
    """A module's ``pytestmark``: its tests on one xdist worker (``group``; run with
    ``--dist loadgroup``), marked ``integration``, skipped with ``missing`` when
    ``server_binary`` is not installed, and skipped unless run as root (engines run as
    other accounts)."""
    return [
        pytest.mark.xdist_group(group),
        pytest.mark.integration,
        pytest.mark.skipif(not server_binary.is_file(), reason=missing),
        pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run engines as another user"),
    ]
