"""Pure: a scrape's snapshot and the recorded figures → Prometheus metric families.

Per-instance families are labelled ``instance_id``, ``instance`` (its name),
``project_id`` and ``datastore``; per-host families ``host_id`` and ``host`` (its name).
An instance's activity counts only while fresh (received within ``stale_after_s``): an
instance whose agent has gone quiet is shown down, with no connections, rate, CPU or
memory. CPU and memory come from the instance's cgroup, so they are shown for a fresh
reading even when the engine did not answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from coffer.services.metrics.recorder import ActivitySample
from coffer.services.metrics.snapshot import InstanceRow, Snapshot

__all__ = ["RATE_FAMILIES", "host_families", "instance_families"]

_GIB = 1024**3
_INSTANCE_LABELS = ["instance_id", "instance", "project_id", "datastore"]
_HOST_LABELS = ["host_id", "host"]
#: ``EngineActivity.kind`` → the family its rate is shown in, and what it counts
RATE_FAMILIES: dict[str, tuple[str, str]] = {
    "transactions": (
        "coffer_instance_transactions_per_second",
        "Transactions (commits and rollbacks) per second between the agent's last two "
        "readings (PostgreSQL).",
    ),
    "queries": (
        "coffer_instance_queries_per_second",
        "Statements sent by clients (Questions) per second between the agent's last two "
        "readings (MariaDB).",
    ),
    "commands": (
        "coffer_instance_commands_per_second",
        "Commands processed per second between the agent's last two readings (Redis).",
    ),
}


def _epoch(at: datetime) -> float:
    """Seconds since the epoch of a naive UTC datetime (as the metadata stores them)."""
    return at.replace(tzinfo=UTC).timestamp()


def _labels(row: InstanceRow) -> list[str]:
    return [row.id, row.name, row.project_id, row.datastore]


def instance_families(
    snapshot: Snapshot,
    activity: Mapping[str, ActivitySample],
    *,
    now: float,
    stale_after_s: float,
) -> list[Metric]:
    """The per-instance families at wall time ``now`` (seconds since the epoch)."""
    up = GaugeMetricFamily(
        "coffer_instance_up",
        "1 if the engine answered the agent's last reading (fresh), else 0.",
        labels=_INSTANCE_LABELS,
    )
    connections = GaugeMetricFamily(
        "coffer_instance_connections",
        "Client sessions open at the agent's last reading (its own not counted).",
        labels=_INSTANCE_LABELS,
    )
    rates = {
        kind: GaugeMetricFamily(name, text, labels=_INSTANCE_LABELS)
        for kind, (name, text) in RATE_FAMILIES.items()
    }
    cpu = GaugeMetricFamily(
        "coffer_instance_cpu_percent",
        "CPU used by the instance's processes between the agent's last two readings of its "
        "cgroup, in percent of one CPU.",
        labels=_INSTANCE_LABELS,
    )
    memory = GaugeMetricFamily(
        "coffer_instance_memory_bytes",
        "Memory the instance's cgroup uses (working set), as its agent last read it.",
        labels=_INSTANCE_LABELS,
    )
    lag = GaugeMetricFamily(
        "coffer_instance_replication_lag_seconds",
        "How far a replica trails its source, as its agent last reported.",
        labels=_INSTANCE_LABELS,
    )
    used = GaugeMetricFamily(
        "coffer_instance_volume_used_bytes",
        "Bytes used on the instance's volume, as its agent last measured.",
        labels=_INSTANCE_LABELS,
    )
    size = GaugeMetricFamily(
        "coffer_instance_volume_size_bytes",
        "Size of the instance's volume in bytes.",
        labels=_INSTANCE_LABELS,
    )
    backup_age = GaugeMetricFamily(
        "coffer_instance_last_backup_age_seconds",
        "Seconds since the instance's latest completed backup completed.",
        labels=_INSTANCE_LABELS,
    )
    for row in snapshot.instances:
        labels = _labels(row)
        sample = activity.get(row.id)
        fresh = sample is not None and now - sample.received <= stale_after_s
        seen = sample.activity if sample is not None and fresh else None
        up.add_metric(labels, 1.0 if seen is not None and seen.up else 0.0)
        if seen is not None and seen.up:
            if seen.connections is not None:
                connections.add_metric(labels, float(seen.connections))
            if seen.kind is not None and seen.rate_per_s is not None:
                rates[seen.kind].add_metric(labels, seen.rate_per_s)
        if seen is not None and seen.cpu_percent is not None:
            cpu.add_metric(labels, seen.cpu_percent)
        if seen is not None and seen.memory_bytes is not None:
            memory.add_metric(labels, float(seen.memory_bytes))
        if row.lag_s is not None:
            lag.add_metric(labels, row.lag_s)
        if row.volume_used_bytes is not None:
            used.add_metric(labels, float(row.volume_used_bytes))
        size.add_metric(labels, float(row.volume_gb * _GIB))
        completed = snapshot.last_backup.get(row.id)
        if completed is not None:
            backup_age.add_metric(labels, max(now - _epoch(completed), 0.0))
    return [up, connections, *rates.values(), cpu, memory, lag, used, size, backup_age]


def host_families(snapshot: Snapshot, heartbeats: Mapping[str, int], *, now: float) -> list[Metric]:
    """Heartbeats received per host by this server, and seconds since each host's last
    accepted heartbeat (recorded in the metadata, so shared by every server)."""
    received = CounterMetricFamily(
        "coffer_agent_heartbeats",
        "Agent heartbeats received by this server since it started, by host.",
        labels=_HOST_LABELS,
    )
    age = GaugeMetricFamily(
        "coffer_agent_heartbeat_age_seconds",
        "Seconds since the host's agent last sent an accepted heartbeat.",
        labels=_HOST_LABELS,
    )
    for host in snapshot.hosts:
        labels = [host.id, host.name]
        received.add_metric(labels, float(heartbeats.get(host.id, 0)))
        if host.last_heartbeat is not None:
            age.add_metric(labels, max(now - _epoch(host.last_heartbeat), 0.0))
    return [received, age]
