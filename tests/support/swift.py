"""A real OpenStack Swift (with its S3 API) on 127.0.0.1, from Debian's packages, for tests.

``SwiftCluster`` runs five processes from one private directory under /tmp: memcached
(tempauth keeps its tokens there) and the account, container, object and proxy servers,
with ``workers = 0`` (no forking, no switch to the ``swift`` user), a plain directory as
the only device (``mount_check = false``) and 1-replica, 1-device rings. The proxy serves
the Swift API (tempauth v1, account ``test``, user ``tester``, a random key) and the S3
API (access key ``test:tester``, the same key as secret).

Ports come from 19100-19199: each xdist worker gets its own block of ten (19100 + 10 * its
index) and takes the free ones in it. Every process carries ``COFFER_TEST_SWIFT_DIR`` in
its environment, so ``start()`` can kill the processes of earlier runs whose directory is
gone, and ``stop()`` kills exactly the PIDs it started and removes the directory.

Use the session fixture ``swift``: ``from tests.support.swift import swift  # noqa: F401``
in a module that asks for it with ``request.getfixturevalue("swift")``, or register it for
every module with ``pytest_plugins = ["tests.support.swift"]`` in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from coffer.storage import StoreConfig

BIN = Path("/usr/bin")
DEBIAN_PYTHON = "/usr/bin/python3"  # Debian's swift package is importable only from here
MARKER = "COFFER_TEST_SWIFT_DIR"
FIRST_PORT, BLOCK = 19100, 10
SERVERS = ("account", "container", "object", "proxy")
ACCOUNT, USER = "test", "tester"


def swift_installed() -> bool:
    return (
        all((BIN / f"swift-{s}-server").is_file() for s in SERVERS)
        and (BIN / "memcached").is_file()
    )


def _worker_ports(count: int) -> list[int]:
    """``count`` free ports from this xdist worker's block of ten."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % 10 if worker.isdigit() else 0
    base = FIRST_PORT + BLOCK * index
    ports = []
    for port in range(base, base + BLOCK):
        with socket.socket() as probe:
            # as the servers do: a port held only by TIME_WAIT connections is free
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"fewer than {count} free ports in {base}-{base + BLOCK - 1} for Swift")


def _marked_processes() -> dict[int, Path]:
    """pid → Swift directory, for every process started by a ``SwiftCluster``."""
    found = {}
    prefix = f"{MARKER}=".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for var in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                if var.startswith(prefix):
                    found[int(entry)] = Path(var[len(prefix) :].decode())
    return found


def clear_stale_clusters() -> list[int]:
    """SIGKILL the processes of earlier clusters whose directory no longer exists."""
    stale = [pid for pid, root in _marked_processes().items() if not root.exists()]
    for pid in stale:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return stale


_RINGS = """
import sys
from swift.common.ring import RingBuilder
etc = sys.argv[1]
for kind, port in zip(("account", "container", "object"), sys.argv[2:]):
    builder = RingBuilder(8, 1, 1)
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                     "device": "d1", "weight": 100})
    builder.rebalance()
    builder.get_ring().save(f"{etc}/{kind}.ring.gz")
"""

_BACKEND = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
mount_check = false
devices = {devices}
swift_dir = {etc}
log_name = {kind}-server

[pipeline:main]
pipeline = healthcheck {kind}-server

[app:{kind}-server]
use = egg:swift#{kind}

[filter:healthcheck]
use = egg:swift#healthcheck
"""

_PROXY = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
swift_dir = {etc}
log_name = proxy-server

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk \
s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
error_suppression_interval = 1

[filter:tempauth]
use = egg:swift#tempauth
user_{account}_{user} = {key} .admin

[filter:s3api]
use = egg:swift#s3api

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcached}

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
"""


@dataclass
class SwiftCluster:
    """One Swift for a test session; ``start()`` returns it ready for the first request."""

    key: str = field(default_factory=lambda: secrets.token_hex(16))
    root: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy']}"

    def swift_config(self, container: str) -> StoreConfig:
        return StoreConfig(
            kind="swift",
            location=f"{self.proxy_url}/auth/v1.0",
            container=container,
            user=f"{ACCOUNT}:{USER}",
            key=self.key,
        )

    def s3_config(self, bucket: str) -> StoreConfig:
        return StoreConfig(
            kind="s3",
            location=self.proxy_url,
            container=bucket,
            user=f"{ACCOUNT}:{USER}",
            key=self.key,
            region="us-east-1",
        )

    def start(self, timeout: float = 60.0) -> SwiftCluster:
        """Write the configuration, build the rings, start every process, wait for health.

        On failure everything started so far is stopped before the error propagates.
        """
        clear_stale_clusters()
        self.root = Path(tempfile.mkdtemp(prefix="cfswift-", dir="/tmp"))
        try:
            self.ports = dict(zip(("memcached", *SERVERS), _worker_ports(5), strict=True))
            self._configure()
            self._spawn_all()
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _configure(self) -> None:
        assert self.root is not None
        etc, devices = self.root / "etc", self.root / "srv"
        etc.mkdir()
        (devices / "d1").mkdir(parents=True)
        subprocess.run(
            [DEBIAN_PYTHON, "-c", _RINGS, str(etc)]
            + [str(self.ports[k]) for k in ("account", "container", "object")],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for kind in ("account", "container", "object"):
            (etc / f"{kind}-server.conf").write_text(
                _BACKEND.format(port=self.ports[kind], devices=devices, etc=etc, kind=kind)
            )
        (etc / "proxy-server.conf").write_text(
            _PROXY.format(
                port=self.ports["proxy"],
                etc=etc,
                account=ACCOUNT,
                user=USER,
                key=self.key,
                memcached=self.ports["memcached"],
            )
        )

    def _spawn_all(self) -> None:
        assert self.root is not None
        port = str(self.ports["memcached"])
        self._spawn(
            "memcached",
            [str(BIN / "memcached"), "-u", "nobody", "-l", "127.0.0.1", "-p", port, "-U", "0"],
        )
        for kind in SERVERS:
            conf = self.root / "etc" / f"{kind}-server.conf"
            self._spawn(kind, [str(BIN / f"swift-{kind}-server"), str(conf), "--verbose"])

    def _spawn(self, name: str, argv: list[str]) -> None:
        assert self.root is not None
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.root),
            "EVENTLET_NO_GREENDNS": "yes",
            MARKER: str(self.root),
        }
        with open(self.root / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=str(self.root),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc

    def _wait_healthy(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        waiting = set(self.procs)
        while waiting:
            for name in sorted(waiting):
                self._check_alive(name)
                if self._healthy(name):
                    waiting.discard(name)
            if not waiting:
                return
            if time.monotonic() > end:
                raise TimeoutError(f"Swift not healthy in {timeout}s: {sorted(waiting)}")
            time.sleep(0.05)

    def _check_alive(self, name: str) -> None:
        status = self.procs[name].poll()
        if status is not None:
            raise RuntimeError(f"Swift {name} exited early ({status}):\n{self.log_tail(name)}")

    def _healthy(self, name: str) -> bool:
        port = self.ports[name]
        try:
            if name == "memcached":
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"version\r\n")
                    return s.recv(64).startswith(b"VERSION")
            reply = httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=1)
            return reply.status_code == 200
        except (OSError, httpx.HTTPError):
            return False

    def log_tail(self, name: str, lines: int = 30) -> str:
        if self.root is None:
            return ""
        with contextlib.suppress(OSError):
            text = (self.root / f"{name}.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """Kill every process this cluster started (by PID) and remove its directory."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.procs.clear()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


_shared: list[SwiftCluster] = []  # the running cluster of this process, if any
_users = [0]


@pytest.fixture(scope="session")
def swift() -> Iterator[SwiftCluster]:
    """A running Swift for the session (per xdist worker); fails if Swift is not installed
    (``scripts/setup --test`` installs it: a missing package is a broken setup, not a skip).

    Registered twice (imported by a module and by a conftest), pytest would make two
    session fixtures of it: they share one cluster, stopped when the last one ends.
    """
    if not swift_installed():
        pytest.fail("Debian's swift and memcached packages are missing: run scripts/setup --test")
    if not _shared:
        _shared.append(SwiftCluster().start())
    _users[0] += 1
    try:
        yield _shared[0]
    finally:
        _users[0] -= 1
        if _users[0] == 0:
            _shared.pop().stop()
