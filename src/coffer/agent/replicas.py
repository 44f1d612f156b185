"""The agent's side of replication: thin calls into the engine's ``Replication`` with the
upstream as the control plane describes it (passwords arrive in sealed command payloads
and go straight to the engine, which keeps them in its own private files)."""

from __future__ import annotations

import time
from typing import Any

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import Engine, InstancePaths, Replication, Upstream
from coffer.errors import EngineError, NotImplementedByDatastore

__all__ = ["catch_up", "open_source", "replication_of", "upstream_of"]

_CATCH_UP_POLL_S = 0.02


def replication_of(engine: Engine, spec: InstanceSpec) -> Replication:
    if engine.replication is None:
        raise NotImplementedByDatastore(f"{spec.engine} has no replicas")
    return engine.replication


def upstream_of(data: dict[str, Any]) -> Upstream:
    """``payload["follow"]`` as the engine's ``Upstream``."""
    return Upstream(
        host=str(data["host"]),
        port=int(data["port"]),
        user=str(data["user"]),
        password=str(data["password"]),
        facts={str(k): str(v) for k, v in (data.get("facts") or {}).items()},
        seed={str(k): str(v) for k, v in (data.get("seed") or {}).items()},
    )


def open_source(
    engine: Engine, paths: InstancePaths, spec: InstanceSpec, payload: dict[str, Any]
) -> dict[str, Any]:
    """Prepare the running source for replica ``payload["replica_id"]``; its facts."""
    facts = replication_of(engine, spec).open_source(
        paths, spec, str(payload["replica_id"]), str(payload["user"]), str(payload["password"])
    )
    return {"facts": facts}


def catch_up(
    replication: Replication,
    paths: InstancePaths,
    spec: InstanceSpec,
    position: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Wait until the replica has applied everything up to ``position``; its position.
    ``EngineError`` when it does not within ``timeout_s``."""
    deadline = time.monotonic() + float(timeout_s)
    while True:
        state = replication.state(paths, spec)
        if state.position >= position:
            return {"position": state.position}
        if time.monotonic() > deadline:
            link = "streaming" if state.streaming else "not streaming"
            raise EngineError(
                f"the replica reached position {state.position}, not {position}, within "
                f"{timeout_s} s ({state.detail or link})"
            )
        time.sleep(_CATCH_UP_POLL_S)
