"""Reply bodies of the REST API (Trove v1.0, Coffer's extensions, the Keystone v3 subset),
as pydantic models for ``/openapi.json``.

They document; they do not build. The views (``coffer.api.views`` and the route modules)
return plain dicts, and routes declare these models with ``coffer.api.openapi.replies``,
so FastAPI neither filters nor re-serialises a reply. The e2e schemathesis run
(``tests/e2e/test_openapi.py``) checks that what the server sends matches them.

Every object is closed (``extra="forbid"``): a key a view adds must be declared here.
A key that is always present is a field without a default (``X | None`` when it may be
null); a key that only some replies carry (by role, state or datastore) has a ``None``
default. Free-form maps (configuration values, host facts) are ``dict[str, Any]``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- shared pieces ---------------------------------------------------------------------


class Link(_Reply):
    href: str
    rel: str


class Ref(_Reply):
    """Another resource: its id and links."""

    id: str
    links: list[Link]


# -- versions ------------------------------------------------------------------------


class ApiVersion(_Reply):
    id: str
    status: str
    updated: str
    links: list[Link]
    media_types: list[dict[str, str]] | None = Field(default=None, alias="media-types")


class VersionList(_Reply):
    versions: list[ApiVersion]


class VersionReply(_Reply):
    version: ApiVersion


class Health(_Reply):
    status: str


class WhoAmI(_Reply):
    project_id: str
    project_name: str
    is_admin: bool
    endpoint: str


class WhoAmIReply(_Reply):
    whoami: WhoAmI


# -- catalog ---------------------------------------------------------------------------


class Flavor(_Reply):
    id: int | None
    str_id: str
    name: str
    ram: int
    vcpus: int
    disk: int
    ephemeral: int
    links: list[Link]


class FlavorReply(_Reply):
    flavor: Flavor


class FlavorList(_Reply):
    flavors: list[Flavor]


class VersionBrief(_Reply):
    id: str
    name: str
    version: str
    links: list[Link]


class Datastore(_Reply):
    id: str
    name: str
    links: list[Link]
    versions: list[VersionBrief]
    default_version: str | None = None


class DatastoreReply(_Reply):
    datastore: Datastore


class DatastoreList(_Reply):
    datastores: list[Datastore]


class DatastoreVersion(_Reply):
    """Admins also see ``active``, ``datastore_manager`` and the image fields."""

    id: str
    name: str
    version: str
    datastore: str
    links: list[Link]
    active: bool | None = None
    datastore_manager: str | None = None
    packages: list[str] | None = None
    image: str | None = None
    image_tags: list[str] | None = None


class DatastoreVersionReply(_Reply):
    version: DatastoreVersion


class DatastoreVersionList(_Reply):
    versions: list[DatastoreVersion]


class AbsoluteLimits(BaseModel):
    """``verb`` and one ``max_<resource>`` per quota resource (-1: unlimited)."""

    model_config = ConfigDict(extra="allow")
    verb: str


class LimitsReply(_Reply):
    limits: list[AbsoluteLimits]


class Parameter(_Reply):
    name: str
    datastore_version_id: str
    restart_required: bool
    type: str
    min: int | float | None = None
    max: int | float | None = None
    choices: list[Any] | None = None
    description: str | None = None


class ParameterList(_Reply):
    configuration_parameters: list[Parameter] = Field(alias="configuration-parameters")


# -- configuration groups --------------------------------------------------------------


class Configuration(_Reply):
    """``values`` and ``instance_count`` in the detailed view (show, create)."""

    id: str
    name: str
    description: str | None
    created: str
    updated: str
    datastore_name: str
    datastore_version_id: str
    datastore_version_name: str
    datastore_version_number: str
    links: list[Link]
    values: dict[str, Any] | None = None
    instance_count: int | None = None


class ConfigurationReply(_Reply):
    configuration: Configuration


class ConfigurationList(_Reply):
    configurations: list[Configuration]


class NamedRef(_Reply):
    id: str
    name: str


class ConfigurationInstances(_Reply):
    instances: list[NamedRef]


class EffectiveConfiguration(_Reply):
    configuration: dict[str, Any]


class EffectiveConfigurationReply(_Reply):
    instance: EffectiveConfiguration


# -- instances -------------------------------------------------------------------------


class InstanceDatastore(_Reply):
    type: str
    version: str
    version_number: str | None = None


class Access(_Reply):
    is_public: bool
    allowed_cidrs: list[str]


class Volume(_Reply):
    size: int
    used: float | None = None
    used_percent: float | None = None


class Address(_Reply):
    address: str
    type: str
    network: str


class Fault(_Reply):
    message: str
    created: str
    details: str | None = None


class Replication(_Reply):
    """Coffer extension: what the engine reports of its replication."""

    role: str | None
    streaming: bool | None
    lag_seconds: float | None
    position: Any
    detail: str


class Server(_Reply):
    """Trove mgmt: the host an instance runs on."""

    id: str
    name: str
    host: str
    tenant_id: str
    addresses: list[Address]


class NamedRefWithLinks(_Reply):
    id: str
    name: str
    links: list[Link]


class Instance(_Reply):
    """Trove's instance; the list omits the detail keys (``created`` ... ``hostname``).
    ``tenant_id``, ``server_id`` and ``volume_id`` are for admins; ``server``,
    ``task_description`` and ``deleted`` for the mgmt view."""

    id: str
    name: str
    status: str
    operating_status: str
    links: list[Link]
    flavor: Ref
    datastore: InstanceDatastore
    region: str
    access: Access
    volume: Volume
    ip: list[str]
    addresses: list[Address]
    port: int
    replica_of: Ref | None = None
    replicas: list[Ref] | None = None
    cluster_id: str | None = None
    type: str | None = None
    tenant_id: str | None = None
    created: str | None = None
    updated: str | None = None
    service_status_updated: str | None = None
    hostname: str | None = None
    fault: Fault | None = None
    configuration: NamedRefWithLinks | None = None
    auto_failover: bool | None = None
    replication: Replication | None = None
    earliest_restorable_time: str | None = None
    latest_restorable_time: str | None = None
    server_id: str | None = None
    volume_id: str | None = None
    server: Server | None = None
    task_description: str | None = None
    deleted: bool | None = None


class InstanceReply(_Reply):
    instance: Instance


class InstanceList(_Reply):
    instances: list[Instance]
    links: list[Link] | None = None


# -- clusters --------------------------------------------------------------------------


class ClusterTask(_Reply):
    id: int
    name: str
    description: str


class ClusterMember(_Reply):
    """``master``: Coffer extension, a Redis replica's master."""

    id: str
    name: str
    type: str | None
    status: str
    links: list[Link]
    flavor: Ref
    volume: Volume
    ip: list[str]
    port: int
    master: str | None = None


class ClusterFault(_Reply):
    message: str
    created: str


class Cluster(_Reply):
    id: str
    name: str
    task: ClusterTask
    created: str
    updated: str
    links: list[Link]
    datastore: InstanceDatastore
    instances: list[ClusterMember]
    ip: list[str]
    fault: ClusterFault | None = None
    tenant_id: str | None = None


class ClusterReply(_Reply):
    cluster: Cluster


class ClusterList(_Reply):
    clusters: list[Cluster]
    links: list[Link] | None = None


# -- databases, users, root ------------------------------------------------------------


class DatabaseName(_Reply):
    name: str


class DatabaseList(_Reply):
    databases: list[DatabaseName]
    links: list[Link] | None = None


class User(_Reply):
    name: str
    host: str
    databases: list[DatabaseName]


class UserReply(_Reply):
    user: User


class UserList(_Reply):
    users: list[User]
    links: list[Link] | None = None


class RootEnabled(_Reply):
    rootEnabled: bool


class RootUser(_Reply):
    name: str
    password: str


class RootUserReply(_Reply):
    user: RootUser


# -- backups ---------------------------------------------------------------------------


class BackupDatastore(_Reply):
    type: str
    version: str
    version_id: str


class Verification(_Reply):
    status: str | None
    detail: str | None
    verified_at: str | None


class Backup(_Reply):
    """Trove's backup, plus Coffer's ``raw_size``, ``checksum``, ``progress_bytes``
    (while building), ``fail_reason`` and ``verification``."""

    id: str
    name: str
    description: str | None
    locationRef: str | None
    instance_id: str | None
    created: str
    updated: str
    size: float | None
    status: str
    parent_id: str | None
    project_id: str
    datastore: BackupDatastore
    raw_size: int | None
    checksum: str | None
    progress_bytes: int | None = None
    fail_reason: str | None = None
    verification: Verification


class BackupReply(_Reply):
    backup: Backup


class BackupList(_Reply):
    backups: list[Backup]
    links: list[Link] | None = None


class BackupSchedule(_Reply):
    id: str
    name: str | None
    instance_id: str
    project_id: str
    full: str
    incremental: str | None
    retention: str
    last_run: str | None
    last_run_at: str | None
    created: str
    links: list[Link]


class BackupScheduleReply(_Reply):
    backup_schedule: BackupSchedule


class BackupScheduleList(_Reply):
    backup_schedules: list[BackupSchedule]


class BackupStrategy(_Reply):
    project_id: str
    instance_id: str | None
    backend: str
    swift_container: str


class BackupStrategyReply(_Reply):
    backup_strategy: BackupStrategy


class BackupStrategyList(_Reply):
    backup_strategies: list[BackupStrategy]


# -- events ----------------------------------------------------------------------------


class Event(_Reply):
    id: int
    created: str
    actor: str
    action: str
    resource_type: str
    resource_id: str | None
    outcome: str
    detail: str


class EventList(_Reply):
    """``links`` holds the next page when the page is full."""

    events: list[Event]
    links: list[Link] | None = None


# -- admin (mgmt) ----------------------------------------------------------------------


class QuotaUsage(_Reply):
    resource: str
    in_use: int
    reserved: int
    limit: int


class QuotaShowReply(_Reply):
    quotas: list[QuotaUsage]


class QuotaUpdateReply(_Reply):
    """The limits just set, by resource."""

    quotas: dict[str, int]


class Credentials(_Reply):
    endpoint: str
    project_id: str
    token: str


class ProjectBrief(_Reply):
    id: str
    name: str


class ProjectCreated(_Reply):
    project: ProjectBrief
    credentials: Credentials


class ProjectList(_Reply):
    projects: list[ProjectBrief]


class CredentialsReply(_Reply):
    credentials: Credentials


class Host(_Reply):
    id: str
    name: str
    address: str
    alive: bool
    last_heartbeat: str | None
    engines: dict[str, list[str]]
    facts: dict[str, Any]
    instances: int
    ports: str


class HostList(_Reply):
    hosts: list[Host]


class JoinTokenReply(_Reply):
    join_token: str


class LoginUser(_Reply):
    id: str
    name: str
    project_id: str
    project_name: str
    is_admin: bool


class LoginUserReply(_Reply):
    user: LoginUser


class LoginUserList(_Reply):
    users: list[LoginUser]


# -- Keystone v3 subset ----------------------------------------------------------------


class KeystoneVersionReply(_Reply):
    version: ApiVersion


class Domain(_Reply):
    id: str
    name: str


class TokenUser(_Reply):
    id: str
    name: str
    domain: Domain
    password_expires_at: str | None


class TokenProject(_Reply):
    id: str
    name: str
    domain: Domain


class Role(_Reply):
    id: str
    name: str


class Endpoint(_Reply):
    id: str
    interface: str
    region: str
    region_id: str
    url: str


class Service(_Reply):
    id: str
    type: str
    name: str
    endpoints: list[Endpoint]


class Token(_Reply):
    methods: list[str]
    user: TokenUser
    audit_ids: list[str]
    issued_at: str
    expires_at: str
    project: TokenProject
    is_domain: bool
    roles: list[Role]
    catalog: list[Service]


class TokenReply(_Reply):
    token: Token


class SelfLink(_Reply):
    self: str


class Project(_Reply):
    id: str
    name: str
    domain_id: str
    description: str
    enabled: bool
    is_domain: bool
    parent_id: str
    tags: list[str]
    links: SelfLink


class ProjectReply(_Reply):
    project: Project


class PageLinks(_Reply):
    self: str
    previous: str | None
    next: str | None


class KeystoneProjectList(_Reply):
    projects: list[Project]
    links: PageLinks
