"""Engine registry: name → engine package, imported lazily.

Adding an engine means adding a package here and one line to ``_REGISTRY``; nothing in the
control plane names a datastore.
"""

from __future__ import annotations

import importlib
from functools import cache

from coffer.engines.base import Catalog, Engine

__all__ = ["Catalog", "Engine", "catalog", "engine", "known_engines"]

#: engine name → module exposing ``CATALOG`` (pure) and ``build_engine(settings)``.
_REGISTRY: dict[str, str] = {
    "postgresql": "coffer.engines.postgresql",
    "mariadb": "coffer.engines.mariadb",
    "redis": "coffer.engines.redis",
}


def known_engines() -> list[str]:
    return sorted(_REGISTRY)


@cache
def catalog(name: str) -> Catalog:
    """The engine's pure catalog (name rules, defaults). Safe to use in the control plane."""
    module = importlib.import_module(_module(name) + ".catalog")
    cat: Catalog = module.CATALOG
    return cat


def engine(name: str, *, engine_user: str, templates_dir: str) -> Engine:
    """Build the engine's host-side parts (agent only)."""
    module = importlib.import_module(_module(name))
    built: Engine = module.build_engine(engine_user=engine_user, templates_dir=templates_dir)
    return built


def _module(name: str) -> str:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no engine named {name!r}; known: {', '.join(known_engines())}") from None
