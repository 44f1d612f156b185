"""MariaDB's template: a data directory made by ``mariadb-install-db`` once per version.

The generic build/clone machinery is ``coffer.engines.templates``; this module says how
MariaDB builds a template and makes a clone durable.

The template has exactly one account, ``root@localhost`` authenticated by
``unix_socket`` (and an impossible password), plus MariaDB's locked ``mariadb.sys``; no
test database, no anonymous users, no ``root`` proxy grant naming the build host. Its
redo log is ``TEMPLATE_LOG_FILE_SIZE``, the size small flavors use, so their first start
does not resize it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from coffer.engines import templates
from coffer.engines.host import EngineUser, run_as
from coffer.engines.mariadb.catalog import INTERNAL_ADMIN

__all__ = ["TEMPLATE_LOG_FILE_SIZE", "clone_template", "ensure_template"]

TEMPLATE_LOG_FILE_SIZE = "16M"
# Run after the system tables are made: the proxy grant install-db gives root on the
# build host's name would be kept in every clone and warned about at every start.
_CLEANUP_SQL = "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';\n"


_HOST_LOCK = Path(tempfile.gettempdir()) / "coffer-mariadb-install-db.lock"


def ensure_template(
    *, templates_dir: Path, version: str, install_db: Path, user: EngineUser
) -> Path:
    """The install-db-made template for ``version`` (built on first use; blocks meanwhile)."""
    name = f"mariadb-{version}"

    def build(partial: Path) -> None:
        extra = templates_dir / f".{name}.cleanup.sql"
        extra.write_text(_CLEANUP_SQL, encoding="utf-8")
        os.chmod(extra, 0o644)
        try:
            argv = [
                str(install_db),
                "--no-defaults",
                f"--datadir={partial}",
                f"--user={user.name}",
                "--auth-root-authentication-method=socket",
                f"--auth-root-socket-user={INTERNAL_ADMIN}",
                "--skip-test-db",
                "--skip-name-resolve",
                f"--extra-file={extra}",
                f"--innodb-log-file-size={TEMPLATE_LOG_FILE_SIZE}",
            ]
            # Concurrent install-db runs on one host fail now and then (seen with three
            # at once); builds are rare, so serialise them host-wide.
            with templates.exclusive_lock(_HOST_LOCK):
                run_as(user, argv, what="mariadb-install-db")
        finally:
            extra.unlink(missing_ok=True)

    return templates.ensure_template(templates_dir=templates_dir, name=name, user=user, build=build)


def clone_template(template: Path, data_dir: Path, *, user: EngineUser) -> None:
    """Clone ``template`` into ``data_dir`` for ``user``, every file fsynced first."""
    templates.clone_template(template, data_dir, user=user, sync=fsync_tree)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (``root`` included)."""
    for directory, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        templates.fsync_dir(Path(directory))
