"""The agent's side of backups: stream one to the object store, restore a chain.

Both run in a worker thread. Bytes never rest on the host: the engine's tool writes into
the upload pipeline (zstd → AES-256-GCM → store), and a restore reads the chain through
the download pipeline, which authenticates every frame and the whole object's checksum
(a tampered or truncated backup raises ``IntegrityError`` and the engine's restore
leaves nothing behind).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from typing import Any

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import BackupOutcome, Engine, InstancePaths, Recovery
from coffer.storage import StoreConfig, open_store, pipeline
from coffer.storage.logstore import LogStore


def take_backup(
    engine: Engine,
    paths: InstancePaths,
    spec: InstanceSpec,
    payload: dict[str, Any],
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Stream a backup of the running instance as ``payload`` describes; return what the
    control plane records (sizes, checksum, positions, counts). ``progress`` receives
    the bytes streamed so far now and then."""
    job = payload["backup"]
    store = open_store(StoreConfig.model_validate(payload["store"]))
    parent = job.get("parent")
    store.purge(job["location"].rsplit("/", 1)[0] + "/")  # what a crashed attempt left

    def produce(sink: Any) -> BackupOutcome:
        return engine.backups.backup(paths, spec, sink, parent)

    outcome, stats = pipeline.upload(
        store,
        job["location"],
        produce,
        data_key=base64.b64decode(job["data_key"]),
        context=job["id"].encode(),
        progress=progress,
    )
    return {
        "size": stats.stored_bytes,
        "raw_size": stats.raw_bytes,
        "sha256": stats.sha256,
        "positions": outcome.positions,
        "counts": outcome.counts,
        "counts_exact": outcome.counts_exact,
    }


def restore_chain(
    engine: Engine, paths: InstancePaths, spec: InstanceSpec, restore: dict[str, Any]
) -> None:
    """Build the instance's data directory from a backup chain (full first), rolled
    forward with the source's shipped change log when ``restore["recovery"]`` names a
    moment."""
    recovery = None
    if (plan := restore.get("recovery")) is not None:
        logs = LogStore(
            open_store(StoreConfig.model_validate(plan["store"])),
            plan["prefix"],
            base64.b64decode(plan["key"]),
            plan["instance_id"],
        )
        recovery = Recovery(target=datetime.fromisoformat(plan["target"]), logs=logs)
    with ExitStack() as stack:
        streams = [
            stack.enter_context(
                pipeline.download(
                    open_store(StoreConfig.model_validate(link["store"])),
                    link["location"],
                    data_key=base64.b64decode(link["data_key"]),
                    context=link["id"].encode(),
                    expected_sha256=link["checksum"],
                )
            )
            for link in restore["chain"]
        ]
        engine.backups.restore(paths, spec, streams, recovery)
