"""Typed settings, validated at start-up and passed explicitly (never read at import time).

Sources, highest first: constructor arguments (CLI flags), ``COFFER_*`` environment
variables, defaults. Paths default to locations under ``data_dir``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from coffer.contracts.paths import configured_data_dir
from coffer.storage.base import StoreConfig


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COFFER_", extra="ignore")

    data_dir: Path = Field(default_factory=configured_data_dir)
    host: str = "127.0.0.1"
    port: int = Field(default=8779, ge=1, le=65535)
    #: public base URL written to credentials.json; derived from host/port when empty.
    public_url: str = ""
    #: SQLAlchemy URL of the metadata database; SQLite under data_dir when empty.
    database_url: str = ""
    #: DBOS system database URL; SQLite under data_dir when empty (or the metadata URL's
    #: PostgreSQL server when that is PostgreSQL).
    system_database_url: str = ""
    #: start one agent for this host in-process-tree (the embedded default).
    local_agent: bool = True
    heartbeat_expiry_s: float = Field(default=90.0, gt=0)
    #: agent heartbeat period asked of agents (seconds).
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    #: a replica set with automatic failover replaces its source once the source's host
    #: has been silent (or its engine down) this long while its replicas lost it
    failover_after_s: float = Field(default=2.5, gt=0)
    #: how often the control plane looks for lost sources
    failover_check_s: float = Field(default=0.25, gt=0)
    #: a Galera cluster none of whose members has accepted connections this long (while
    #: their hosts report) is recovered from its most advanced member
    cluster_recover_after_s: float = Field(default=10.0, gt=0)
    create_timeout_s: float = Field(default=600.0, gt=0)
    action_timeout_s: float = Field(default=300.0, gt=0)
    admin_call_timeout_s: float = Field(default=60.0, gt=0)
    port_range: str = "15000-15999"
    engine_user: str = "coffer"
    max_volume_gb: int = Field(default=100, ge=1)
    default_quota_instances: int = 10
    default_quota_ram_mb: int = -1
    default_quota_volumes_gb: int = 40
    default_quota_backups: int = 50
    #: seconds between checks that the local agent process is alive (0: never restart it).
    local_agent_restart_s: float = 2.0
    #: where backups go (JSON, e.g. ``{"kind": "swift", "location": "http://.../auth/v1.0",
    #: "container": "backups", "user": "acct:user", "key": "..."}``); a directory under
    #: ``data_dir`` when unset. A directory store must be the same path on every host.
    backup_store: StoreConfig | None = None
    backup_timeout_s: float = Field(default=3600.0, gt=0)
    #: restore every completed backup into a throwaway instance and check it
    verify_backups: bool = True
    #: lifetime of a token issued by a password login (``POST /v3/auth/tokens``)
    keystone_token_ttl_s: float = Field(default=3600.0, gt=0)
    #: metrics history: keep one sample per instance at most this often (seconds)
    metrics_sample_interval_s: float = Field(default=15.0, gt=0)
    #: metrics history: samples older than this are pruned (seconds; default one day)
    metrics_retention_s: float = Field(default=86400.0, gt=0)

    @property
    def store_config(self) -> StoreConfig:
        return self.backup_store or StoreConfig(location=str(self.data_dir / "backups"))

    @model_validator(mode="after")
    def _check_ports(self) -> ServerSettings:
        low, high = parse_port_range(self.port_range)
        if not 1024 <= low <= high <= 32767:
            raise ValueError("port_range must lie within 1024-32767 (below the ephemeral range)")
        return self

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    @property
    def metadata_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'coffer.db'}"

    @property
    def dbos_url(self) -> str:
        if self.system_database_url:
            return self.system_database_url
        if self.metadata_url.startswith("postgresql"):
            # same server, a sibling database: <metadata db>_dbos
            base, _, query = self.metadata_url.partition("?")
            return base + "_dbos" + (f"?{query}" if query else "")
        return f"sqlite:///{self.data_dir / 'dbos.sqlite'}"


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COFFER_AGENT_", extra="ignore")

    server_url: str = "http://127.0.0.1:8779"
    #: join token for the first registration; the host credential is kept in state_dir.
    join_token: str = ""
    state_dir: Path = Field(default_factory=lambda: configured_data_dir() / "agent")
    host_name: str = "local"
    #: address clients use to reach engines on this host.
    advertise_host: str = "127.0.0.1"
    engine_user: str = "coffer"
    poll_wait_s: float = Field(default=20.0, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    log_file: Path | None = None
    #: "auto" (XFS loop volumes where the host allows, else directories), "xfs-loop" or
    #: "directory"
    volume_mode: str = Field(default="auto", pattern="^(auto|xfs-loop|directory)$")
    #: "auto" (cgroup v2, else v1, else none) or "none": flavor limits on engine processes
    limits_mode: str = Field(default="auto", pattern="^(auto|none)$")
    #: seconds between volume usage checks (the read-only guard acts on them)
    volume_check_s: float = Field(default=1.0, gt=0)
    #: a volume this full turns its instance read-only; below ``volume_writable_below`` it
    #: becomes writable again
    volume_read_only_at: float = Field(default=0.90, gt=0, le=1)
    volume_writable_below: float = Field(default=0.85, gt=0, le=1)

    @property
    def instances_dir(self) -> Path:
        return self.state_dir / "instances"

    @property
    def templates_dir(self) -> Path:
        return self.state_dir / "templates"


def parse_port_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise ValueError(f"bad port range {text!r}; expected LOW-HIGH") from None
