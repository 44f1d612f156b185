"""MariaDB servers run by hand as the engine user, outside Coffer, for comparison.

``mariadb-install-db`` runs with the options Coffer's template build uses, then
``mariadbd --no-defaults`` starts in the foreground with its port, socket, pid file and
temporary dir on the command line (no option file is read). The only account is
``root@localhost`` authenticated by ``unix_socket``, so connect as OS root over the unix
socket. Everything runs as the unprivileged ``coffer`` user; the directories a server
writes (data dir, run dir) are owned by it and their parent must be traversable by it
(mode 0755 under /tmp).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bare_postgres import ENGINE_USER, run_as_engine
from bench.bare_process import exit_reason, spawn_as_engine, stop_process
from coffer.engines.mariadb.catalog import INTERNAL_ADMIN
from coffer.engines.mariadb.lifecycle import DEFAULT_INSTALL_DB, DEFAULT_SERVER

# The install-db inputs Coffer's template build uses (the SQL is a private name, read on
# purpose so that a change there shows up here).
from coffer.engines.mariadb.template import _CLEANUP_SQL as COFFER_CLEANUP_SQL
from coffer.engines.mariadb.template import TEMPLATE_LOG_FILE_SIZE

__all__ = ["INSTALL_DB", "MARIADBD", "BareMariaDB", "install_db_options"]

MARIADBD = DEFAULT_SERVER
INSTALL_DB = DEFAULT_INSTALL_DB


def install_db_options(data_dir: Path, extra_file: Path) -> list[str]:
    """The options of ``coffer.engines.mariadb.template.ensure_template``'s build, with
    this data dir and cleanup-SQL file. Coffer builds the list inside that function, so it
    is repeated here: keep the two in step."""
    return [
        "--no-defaults",
        f"--datadir={data_dir}",
        f"--user={ENGINE_USER}",
        "--auth-root-authentication-method=socket",
        f"--auth-root-socket-user={INTERNAL_ADMIN}",
        "--skip-test-db",
        "--skip-name-resolve",
        f"--extra-file={extra_file}",
        f"--innodb-log-file-size={TEMPLATE_LOG_FILE_SIZE}",
    ]


@dataclass
class BareMariaDB:
    """One server: ``data_dir`` (absent until ``install_db``) and ``run_dir`` (existing,
    owned by the engine user) for its socket, pid file, temporary files and log."""

    data_dir: Path
    run_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.run_dir / "mariadbd.sock"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "mariadbd.log"

    def install_db(self) -> None:
        """``mariadb-install-db`` with Coffer's template options. Blocks."""
        extra = self.run_dir / "cleanup.sql"
        extra.write_text(COFFER_CLEANUP_SQL, encoding="utf-8")
        shutil.chown(extra, ENGINE_USER, ENGINE_USER)
        os.chmod(extra, 0o600)
        self.data_dir.mkdir(mode=0o700)
        shutil.chown(self.data_dir, ENGINE_USER, ENGINE_USER)
        try:
            run_as_engine([str(INSTALL_DB), *install_db_options(self.data_dir, extra)])
        finally:
            extra.unlink(missing_ok=True)

    def start(self) -> None:
        """``mariadbd --no-defaults ...`` in the foreground, without waiting (callers poll a
        connection themselves). The redo log size matches the data dir's, so the first
        start does not resize it."""
        argv = [
            str(MARIADBD),
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--socket={self.socket}",
            f"--pid-file={self.run_dir / 'mariadbd.pid'}",
            f"--tmpdir={self.run_dir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--innodb-log-file-size={TEMPLATE_LOG_FILE_SIZE}",
        ]
        self.proc = spawn_as_engine(argv, cwd=self.run_dir, log_file=self.log_file)

    def stop(self) -> None:
        """SIGTERM (clean shutdown) and wait; a no-op if it is not running."""
        stop_process(self.proc)

    def exited(self) -> str | None:
        """Why the server will never accept a connection, or None while it runs."""
        return exit_reason(self.proc, self.log_file, "mariadbd")

    def socket_conninfo(self) -> dict[str, Any]:
        """PyMySQL arguments: root over the unix socket (``unix_socket`` authentication)."""
        return {"unix_socket": str(self.socket), "user": INTERNAL_ADMIN}
