"""SQLAlchemy 2 models of Coffer's metadata. Schema changes go through Alembic."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime)


class Token(Base):
    __tablename__ = "tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime)
    #: the user who logged in for it (Keystone password tokens); None for API tokens
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    #: refused from this moment on; None: never expires (API tokens)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Quota(Base):
    __tablename__ = "quotas"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    resource: Mapped[str] = mapped_column(String(32), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class Flavor(Base):
    __tablename__ = "flavors"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    ram_mb: Mapped[int] = mapped_column(Integer)
    vcpus: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer, default=0)


class Datastore(Base):
    __tablename__ = "datastores"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    default_version_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class DatastoreVersion(Base):
    __tablename__ = "datastore_versions"
    __table_args__ = (UniqueConstraint("datastore_id", "name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    datastore_id: Mapped[str] = mapped_column(ForeignKey("datastores.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    #: engine registry name (Trove's datastore_manager)
    manager: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Host(Base):
    __tablename__ = "hosts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    address: Mapped[str] = mapped_column(String(255))
    credential_hash: Mapped[str] = mapped_column(String(64))
    port_min: Mapped[int] = mapped_column(Integer)
    port_max: Mapped[int] = mapped_column(Integer)
    engines: Mapped[str] = mapped_column(Text, default="")
    #: JSON of what the host permits (volume and resource-limit modes)
    facts: Mapped[str] = mapped_column(Text, default="{}")
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_heartbeat: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime)


class JoinToken(Base):
    __tablename__ = "join_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[datetime] = mapped_column(DateTime)


class Configuration(Base):
    """A configuration group: parameter values for one datastore version."""

    __tablename__ = "configurations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    datastore_version_id: Mapped[str] = mapped_column(ForeignKey("datastore_versions.id"))
    values_json: Mapped[str] = mapped_column(Text, default="{}")
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)


class Instance(Base):
    __tablename__ = "instances"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    flavor_id: Mapped[str] = mapped_column(ForeignKey("flavors.id"))
    volume_gb: Mapped[int] = mapped_column(Integer)
    datastore_version_id: Mapped[str] = mapped_column(ForeignKey("datastore_versions.id"))
    host_id: Mapped[str] = mapped_column(ForeignKey("hosts.id"), index=True)
    port: Mapped[int] = mapped_column(Integer)
    task_status: Mapped[str] = mapped_column(String(32))
    #: id of the workflow running the current task (durable, idempotent to re-start)
    task_workflow_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    task_deadline: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    service_status: Mapped[str] = mapped_column(String(32))
    service_status_updated: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: agent clock (ns) of the observation behind ``service_status``; older ones are dropped
    service_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    volume_used_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fault_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    fault_details: Mapped[str | None] = mapped_column(Text, nullable=True)
    fault_created: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    root_enabled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    configuration_id: Mapped[str | None] = mapped_column(
        ForeignKey("configurations.id"), nullable=True, index=True
    )
    #: JSON of the configuration values the engine was last told (its applied overrides)
    parameters_json: Mapped[str] = mapped_column(Text, default="{}")
    #: key of the shipped change log (point-in-time recovery), sealed with the master key;
    #: made with the first completed full backup
    log_key_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the store container the change log is shipped to
    log_container: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: the change log is shipped up to this moment (reported by the agent)
    restorable_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: the instance this one replicates (a replica), None for a primary or standalone
    replica_of_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    #: password of the replication account its replicas log in with, sealed (a source)
    replication_secret_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: JSON: the replication state the agent last reported (role, streaming, lag, position)
    replication_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: a source whose replica set fails over by itself when it is lost (Coffer extension)
    auto_failover: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: the cluster this instance is a member of (None: not a member)
    cluster_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    #: JSON: the member's part in its cluster (``services.clusters.Membership``)
    cluster_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the agent's count of engine restarts after a death, as last reported
    engine_restarts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: JSON list: the USER logs switched on (``services.instance_logs``)
    guest_logs_json: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    created: Mapped[datetime] = mapped_column(DateTime, index=True)
    updated: Mapped[datetime] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class PortLease(Base):
    """A port in use on a host. The primary key makes allocation race-free."""

    __tablename__ = "port_leases"
    host_id: Mapped[str] = mapped_column(ForeignKey("hosts.id"), primary_key=True)
    port: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the instance's id for its client port, ``<id>/<purpose>`` for another port it
    #: needs (a Galera member's group communication, IST and SST ports)
    instance_id: Mapped[str] = mapped_column(String(64), unique=True)


class Cluster(Base):
    """A Galera or Redis cluster: its members are instances with ``cluster_id`` set."""

    __tablename__ = "clusters"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    datastore_version_id: Mapped[str] = mapped_column(ForeignKey("datastore_versions.id"))
    #: Trove's cluster task (``domain.states.ClusterTask``)
    task_status: Mapped[str] = mapped_column(String(32))
    task_workflow_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    task_deadline: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: the members' shared internal password (Galera state transfer, Redis cluster
    #: accounts), sealed with the master key
    secret_sealed: Mapped[str] = mapped_column(Text)
    #: why the last cluster task failed (members carry their own faults)
    fault_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    fault_created: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Command(Base):
    """A unit of work for an agent, stored before it is sent (at-least-once delivery)."""

    __tablename__ = "commands"
    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    host_id: Mapped[str] = mapped_column(ForeignKey("hosts.id"), index=True)
    instance_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    #: JSON arguments, sealed with the master key (they may hold passwords)
    payload_sealed: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    result_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


class Backup(Base):
    """One backup: its record here, its bytes and manifest in the object store."""

    __tablename__ = "backups"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    instance_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    datastore_version_id: Mapped[str] = mapped_column(ForeignKey("datastore_versions.id"))
    #: NEW, BUILDING, COMPLETED, FAILED, DELETE_FAILED (Trove's backup states)
    state: Mapped[str] = mapped_column(String(16), index=True)
    workflow_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    #: the store's key of the data object; the manifest sits beside it
    location: Mapped[str] = mapped_column(String(512))
    #: the store's description when the backup was taken (no secrets)
    store: Mapped[str] = mapped_column(String(512), default="")
    #: the store's container (Swift) or bucket (S3) holding it
    container: Mapped[str] = mapped_column(String(255))
    #: per-backup data key, sealed with the deployment master key
    data_key_sealed: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    raw_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: JSON: the engine's log positions at the end of the backup
    positions_json: Mapped[str] = mapped_column(Text, default="{}")
    #: JSON: rows/keys counted at backup time (verification compares them)
    counts_json: Mapped[str] = mapped_column(Text, default="{}")
    #: whether ``counts_json`` is exactly the backup's (see ``BackupOutcome.counts_exact``)
    counts_exact: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the schedule that took it (its retention prunes it), None for an on-demand backup
    schedule_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    #: bytes streamed so far while BUILDING (progress)
    progress_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    fail_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: restore-and-check of the completed backup: PENDING, RUNNING, VERIFIED, FAILED
    verify_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    verify_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime, index=True)
    updated: Mapped[datetime] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class BackupSchedule(Base):
    """Automatic backups of one instance (Coffer extension): cron expressions for full
    and incremental backups, and how long their backups are kept. The timing itself is a
    DBOS schedule of the same id (durable across restarts)."""

    __tablename__ = "backup_schedules"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(255))
    full_cron: Mapped[str] = mapped_column(String(128))
    incremental_cron: Mapped[str | None] = mapped_column(String(128), nullable=True)
    retention: Mapped[str] = mapped_column(String(32))
    #: what the last run did (e.g. "started backup ...", "skipped: instance busy")
    last_run: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime)


class BackupStrategy(Base):
    """Trove's backup strategy: the container new backups of a project (``instance_id``
    None) or of one instance go to."""

    __tablename__ = "backup_strategies"
    __table_args__ = (UniqueConstraint("project_id", "instance_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    instance_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    backend: Mapped[str] = mapped_column(String(32))
    swift_container: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(DateTime)


class User(Base):
    """Someone who logs in with a password (Keystone v3 subset); a member of one project."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    #: ``coffer.passwords`` hash (scrypt, salted); never the password itself
    password_hash: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime)


class Event(Base):
    """One entry of the audit trail: a request that changed (or tried to change) state,
    or something the system did by itself (``actor`` "system")."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_project_created", "project_id", "created"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: the project whose resource it concerns (not a foreign key: events outlive nothing
    #: but are kept when the resource is deleted)
    project_id: Mapped[str] = mapped_column(String(32))
    created: Mapped[datetime] = mapped_column(DateTime)
    #: "project <name>" (with " (admin)"), or "system"
    actor: Mapped[str] = mapped_column(String(300))
    #: e.g. "instance.create", "instance.failover", "backup.verify"
    action: Mapped[str] = mapped_column(String(120))
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    #: an HTTP status for requests; "started", "done" or "failed" for the system's own
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")


class MetricSample(Base):
    """One moment of an instance's metrics history (Coffer extension): what its agent
    reported, kept at most every ``metrics_sample_interval_s`` per instance and pruned
    after ``metrics_retention_s``. Removed with the instance."""

    __tablename__ = "metric_samples"
    __table_args__ = (Index("ix_metric_samples_instance_at", "instance_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: not a foreign key: samples go with the instance's deletion (``metric_history``)
    instance_id: Mapped[str] = mapped_column(String(36))
    #: when the server received it, naive UTC
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    #: the engine answered the agent's last reading
    up: Mapped[bool] = mapped_column(Boolean)
    connections: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: what ``rate_per_s`` counts: transactions, queries or commands
    rate_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    rate_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: percent of one CPU
    cpu_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    volume_used_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    volume_size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: a replica's lag behind its source, seconds
    replication_lag_s: Mapped[float | None] = mapped_column(Float, nullable=True)
