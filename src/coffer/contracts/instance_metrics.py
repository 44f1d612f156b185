"""The metrics history of an instance (Coffer extension), as
``GET /v1.0/{project_id}/instances/{id}/metrics`` answers it. Times are UTC."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

from coffer.contracts.engine import ActivityKind

__all__ = ["InstanceMetrics", "InstanceMetricsResponse", "MetricPoint"]


class MetricPoint(BaseModel):
    """One moment: a sample as kept, or the mean of the samples of one step."""

    at: AwareDatetime
    #: the engine answered its agent's reading
    up: bool
    #: client sessions open (None while the engine did not answer)
    connections: int | None = Field(default=None, ge=0)
    #: operations per second; what they are: ``InstanceMetrics.rate_kind``
    rate_per_s: float | None = Field(default=None, ge=0)
    #: CPU used, percent of one CPU (None without a cgroup, or at the agent's first reading)
    cpu_percent: float | None = Field(default=None, ge=0)
    #: memory used (the cgroup's working set), bytes
    memory_bytes: int | None = Field(default=None, ge=0)
    volume_used_bytes: int | None = Field(default=None, ge=0)
    volume_size_bytes: int | None = Field(default=None, ge=0)
    #: how far a replica trails its source, seconds (None for others)
    replication_lag_s: float | None = Field(default=None, ge=0)


class InstanceMetrics(BaseModel):
    instance_id: str
    since: AwareDatetime
    until: AwareDatetime
    #: the server keeps a sample per instance at most this often, seconds
    sample_interval_s: float
    #: samples are kept this long, seconds
    retention_s: float
    #: seconds of samples merged into each point; None when the points are the samples
    step_s: float | None = None
    #: what ``rate_per_s`` counts: transactions (PostgreSQL), queries (MariaDB),
    #: commands (Redis); None before the engine reported a rate
    rate_kind: ActivityKind | None = None
    #: oldest first
    samples: list[MetricPoint]


class InstanceMetricsResponse(BaseModel):
    metrics: InstanceMetrics
