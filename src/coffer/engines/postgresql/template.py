"""PostgreSQL's template: a data directory made by ``initdb`` once per version.

The generic build/clone machinery is ``coffer.engines.templates``; this module says how
PostgreSQL builds a template and makes a clone durable.
"""

from __future__ import annotations

from pathlib import Path

from coffer.engines import templates
from coffer.engines.host import EngineUser, run_as
from coffer.engines.postgresql.catalog import INTERNAL_SUPERUSER

__all__ = ["clone_template", "ensure_template"]

_INITDB_OPTIONS = (
    "-U",
    INTERNAL_SUPERUSER,
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "-E",
    "UTF8",
    "--locale=C.UTF-8",
    "--no-instructions",
)


def ensure_template(*, templates_dir: Path, version: str, bin_dir: Path, user: EngineUser) -> Path:
    """The initdb-made template for ``version`` (built on first use; blocks meanwhile)."""

    def build(partial: Path) -> None:
        run_as(user, [str(bin_dir / "initdb"), "-D", str(partial), *_INITDB_OPTIONS], what="initdb")

    return templates.ensure_template(
        templates_dir=templates_dir, name=f"postgresql-{version}", user=user, build=build
    )


def clone_template(template: Path, data_dir: Path, *, bin_dir: Path, user: EngineUser) -> None:
    """Clone ``template`` into ``data_dir`` for ``user``, synced with ``initdb --sync-only``."""

    def sync(partial: Path) -> None:
        run_as(user, [str(bin_dir / "initdb"), "--sync-only", "-D", str(partial)], what="sync")

    templates.clone_template(template, data_dir, user=user, sync=sync)
