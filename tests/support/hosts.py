"""A second database host for tests: a real `coffer agent` process with its own state
directory and its own address (any 127.0.0.x binds here, so ports may repeat)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import IO

from coffer.agent import osusers
from tests.support.processes import (
    COFFER,
    ROOT,
    CofferServer,
    kill_everything_under,
    short_tmpdir,
    unmount_everything_under,
    wait_for,
)

__all__ = ["ExtraHost", "join_token"]


def join_token(server: CofferServer) -> str:
    with server.admin().client() as c:
        r = c.post("/mgmt/hosts/join-tokens")
        assert r.status_code == 200, r.text
        return str(r.json()["join_token"])


class ExtraHost:
    """``start`` registers it (once) and waits until the server sees it alive; ``kill9``
    crashes the agent alone (its engines keep running, as after a real crash); ``stop``
    removes everything it ran and stored."""

    def __init__(
        self, server: CofferServer, name: str = "second-host", address: str = "127.0.0.2"
    ) -> None:
        self.server, self.name, self.address = server, name, address
        self.state: Path = short_tmpdir("cfh2-")
        self.proc: subprocess.Popen[bytes] | None = None
        self._token: str | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30) -> ExtraHost:
        env = self.server.environ()
        self._token = self._token or join_token(self.server)
        env.update(
            COFFER_AGENT_JOIN_TOKEN=self._token,
            COFFER_AGENT_SERVER_URL=self.server.url,
        )
        self._log = self._log or open(self.state / "agent.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *COFFER,
                "agent",
                "--host-name",
                self.name,
                "--state-dir",
                str(self.state),
                "--advertise-host",
                self.address,
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
        with self.server.admin().client() as c:
            wait_for(
                lambda: any(
                    h["name"] == self.name and h["alive"]
                    for h in c.get("/mgmt/hosts").json()["hosts"]
                ),
                timeout,
                self.name,
            )
        return self

    def instance_dir(self, instance_id: str) -> Path:
        return self.state / "instances" / instance_id

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None
        kill_everything_under(self.state)
        unmount_everything_under(self.state)
        osusers.sweep(self.state / "instances", live=set())
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.state, ignore_errors=True)
