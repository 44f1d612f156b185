"""A throwaway PostgreSQL server run by hand (as the engine user), for Coffer's metadata."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.support.processes import free_port, short_tmpdir

BIN = Path("/usr/lib/postgresql/15/bin")
USER = os.environ.get("COFFER_ENGINE_USER", "coffer")


def _as_engine_user(argv: list[str]) -> None:
    pw = pwd.getpwnam(USER)
    subprocess.run(
        argv,
        check=True,
        capture_output=True,
        user=pw.pw_uid,
        group=pw.pw_gid,
        extra_groups=[],
        env={"HOME": "/tmp", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )


@dataclass
class MetadataPostgres:
    root: Path = field(default_factory=lambda: short_tmpdir("cfmeta-"))
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def start(self) -> MetadataPostgres:
        pw = pwd.getpwnam(USER)
        os.chown(self.root, pw.pw_uid, pw.pw_gid)
        _as_engine_user(
            [
                str(BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off"
        )
        _as_engine_user(
            [
                str(BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log"),
                "-w",
                "-o",
                opts,
                "start",
            ]
        )
        return self

    def new_database_url(self) -> str:
        """A fresh, empty database for one Coffer server (its DBOS database is a sibling)."""
        name = f"coffer_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            _as_engine_user(
                [str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            )
        time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)
