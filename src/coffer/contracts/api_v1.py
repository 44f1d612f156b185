"""Request bodies of the Trove v1.0 API (and Coffer's extensions), as pydantic models.

Models validate shape and types only; rules that need the catalog or the engine (names,
quotas, states) live in the services. Unknown keys are refused, as Trove's schemas do.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NaiveDatetime,
    StrictBool,
    StrictInt,
    StringConstraints,
)

#: the largest integer a metadata column holds (SQL INTEGER); larger ones are refused (400)
MAX_INT = 2**31 - 1
#: a strict integer a column can hold
ColumnInt = Annotated[int, Field(strict=True, le=MAX_INT)]

DigitString = Annotated[str, StringConstraints(pattern=r"^[0-9]+$", max_length=9)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VolumeIn(_Body):
    size: StrictInt | DigitString
    type: str | None = None


class DatastoreIn(_Body):
    type: str | None = None
    version: str | None = None
    version_number: str | None = None


class DatabaseIn(_Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    character_set: str | None = None
    collate: str | None = None


class DatabaseRef(_Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class UserIn(_Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(repr=False)
    host: str | None = None
    databases: list[DatabaseRef] = Field(default_factory=list)


class AccessIn(_Body):
    is_public: StrictBool | None = None
    allowed_cidrs: list[str] | None = None


class RestorePointIn(_Body):
    """Trove's ``backupRef``; Coffer adds point-in-time recovery: ``restore_time`` (ISO
    8601; UTC when no offset is given) rolls the restore forward to that moment, from
    the named backup or, with ``instanceRef``, from the instance's newest backup before
    it."""

    backupRef: str | None = None
    instanceRef: str | None = None
    restore_time: AwareDatetime | NaiveDatetime | None = None


class InstanceCreate(_Body):
    name: Name
    flavorRef: (
        StrictInt | Annotated[str, StringConstraints(min_length=1, max_length=255)] | None
    ) = None
    volume: VolumeIn | None = None
    datastore: DatastoreIn | None = None
    databases: list[DatabaseIn] = Field(default_factory=list)
    users: list[UserIn] = Field(default_factory=list)
    configuration: str | None = None
    configuration_id: str | None = None
    restorePoint: RestorePointIn | None = None
    replica_of: str | None = None
    replica_count: StrictInt | None = None
    availability_zone: str | None = None
    nics: list[dict[str, Any]] | None = None
    access: AccessIn | None = None
    locality: str | None = None
    region_name: str | None = None
    modules: list[dict[str, Any]] | None = None


class InstanceCreateBody(_Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "instance": {
                        "name": "shop-db",
                        "flavorRef": "1",
                        "volume": {"size": 1},
                        "datastore": {"type": "postgresql", "version": "15"},
                        "databases": [{"name": "shop"}],
                        "users": [
                            {
                                "name": "app",
                                "password": "app-secret-1",
                                "databases": [{"name": "shop"}],
                            }
                        ],
                    }
                }
            ]
        },
    )
    instance: InstanceCreate


class InstanceUpdate(_Body):
    name: Name | None = None
    configuration: str | None = None
    replica_of: Any = None
    slave_of: Any = None
    datastore_version: str | None = None
    access: AccessIn | None = None
    #: Coffer extension, on a replica set's source: fail over by itself when it is lost
    auto_failover: StrictBool | None = None


class InstanceUpdateBody(_Body):
    instance: InstanceUpdate


class ResizeIn(_Body):
    flavorRef: StrictInt | str | None = None
    volume: VolumeIn | None = None


class ResetStatusIn(_Body):
    force_delete: Any = None


class InstanceAction(_Body):
    restart: dict[str, Any] | None = None
    resize: ResizeIn | None = None
    reset_status: ResetStatusIn | None = None
    promote_to_replica_source: dict[str, Any] | None = None
    eject_replica_source: dict[str, Any] | None = None


def _single_type(value: object) -> object:
    """python-troveclient sends ``type=replica`` as ``["replica"]`` (Trove takes a list or
    a string); a member has one type."""
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError("a cluster member has exactly one type")
        return value[0]
    return value


class ClusterMemberIn(_Body):
    """One member of ``clusters`` create or ``grow``. ``type``: for Redis, ``master``
    (the default) or ``replica``; Galera members have no type."""

    flavorRef: StrictInt | Annotated[str, StringConstraints(min_length=1, max_length=255)]
    volume: VolumeIn | None = None
    name: Name | None = None
    type: Annotated[str, BeforeValidator(_single_type)] | None = None
    nics: list[dict[str, Any]] | None = None
    availability_zone: str | None = None
    modules: list[dict[str, Any]] | None = None
    region_name: str | None = None
    related_to: str | None = None


class ClusterCreate(_Body):
    name: Name
    datastore: DatastoreIn
    instances: list[ClusterMemberIn] = Field(min_length=1)
    locality: str | None = None
    extended_properties: dict[str, Any] | None = None
    configuration: str | None = None


class ClusterCreateBody(_Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "cluster": {
                        "name": "cache",
                        "datastore": {"type": "redis", "version": "7.0"},
                        "instances": [{"flavorRef": "1", "volume": {"size": 1}}] * 3,
                    }
                }
            ]
        },
    )
    cluster: ClusterCreate


class ShrinkIn(_Body):
    id: str


class ClusterAction(_Body):
    """Exactly one key (checked by the service); ``reset-status`` is admin only."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    grow: list[ClusterMemberIn] | None = Field(default=None, min_length=1)
    shrink: list[ShrinkIn] | None = Field(default=None, min_length=1)
    restart: dict[str, Any] | None = None
    reset_status: dict[str, Any] | None = Field(default=None, alias="reset-status")
    upgrade: dict[str, Any] | None = None
    configuration_attach: dict[str, Any] | None = None
    configuration_detach: dict[str, Any] | None = None
    add_shard: dict[str, Any] | None = None


class ClusterResetBody(_Body):
    """Trove's mgmt cluster action: only ``{"reset-task": {}}``."""

    reset_task: dict[str, Any] = Field(alias="reset-task")


class DatabasesBody(_Body):
    databases: list[DatabaseIn] = Field(min_length=1)


class UsersBody(_Body):
    users: list[UserIn] = Field(min_length=1)


class UserPasswordIn(_Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(repr=False)
    host: str | None = None


class UsersPasswordBody(_Body):
    users: list[UserPasswordIn] = Field(min_length=1)


class UserAttributesIn(_Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    password: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        default=None, repr=False
    )
    host: str | None = None


class UserAttributesBody(_Body):
    user: UserAttributesIn


class GrantBody(_Body):
    databases: list[DatabaseRef] = Field(min_length=1)


class RootEnableBody(_Body):
    password: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        default=None, repr=False
    )


class QuotasBody(_Body):
    quotas: dict[str, Any]


class ProjectIn(_Body):
    name: str


class ProjectBody(_Body):
    project: ProjectIn


class TokenIn(_Body):
    project: str


class TokenBody(_Body):
    token: TokenIn


class FlavorIn(_Body):
    name: str
    ram: ColumnInt
    vcpus: ColumnInt
    disk: ColumnInt = 0
    id: str | None = None


class FlavorBody(_Body):
    flavor: FlavorIn


class ConfigurationCreate(_Body):
    name: Name
    values: dict[str, Any]
    description: Annotated[str, StringConstraints(max_length=1024)] | None = None
    datastore: DatastoreIn | None = None


class ConfigurationCreateBody(_Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "configuration": {
                        "name": "busy",
                        "values": {"max_connections": 200},
                        "datastore": {"type": "postgresql", "version": "15"},
                    }
                }
            ]
        },
    )
    configuration: ConfigurationCreate


class ConfigurationUpdate(_Body):
    values: dict[str, Any] | None = None
    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=1024)] | None = None


class ConfigurationUpdateBody(_Body):
    configuration: ConfigurationUpdate


class DatastoreVersionIn(_Body):
    """Trove's mgmt datastore-version registration (image fields accepted, unused here)."""

    name: Name
    datastore_name: Name
    datastore_manager: Name
    version: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    active: StrictBool | int = True
    default: StrictBool | int = False
    image: str | None = None
    image_tags: list[str] | None = None
    packages: list[str] | str | None = None
    registry_ext: str | None = None
    repl_strategy: str | None = None


class DatastoreVersionBody(_Body):
    version: DatastoreVersionIn


class DatastoreVersionPatch(_Body):
    datastore_manager: str | None = None
    name: Name | None = None
    active: StrictBool | int | None = None
    default: StrictBool | int | None = None
    image: str | None = None
    image_tags: list[str] | None = None
    packages: list[str] | str | None = None
    registry_ext: str | None = None
    repl_strategy: str | None = None


class BackupCreate(_Body):
    """Trove's backup create body. ``incremental`` is an integer 0/1 as Trove has it."""

    name: Name
    instance: str | None = None
    description: Annotated[str, StringConstraints(max_length=1024)] | None = None
    parent_id: str | None = None
    incremental: Annotated[int, Field(ge=0, le=1, strict=True)] | None = None
    swift_container: str | None = None
    storage_driver: str | None = None
    restore_from: dict[str, Any] | None = None


class BackupCreateBody(_Body):
    backup: BackupCreate


class BackupScheduleCreate(_Body):
    """Coffer extension: automatic backups of one instance. ``full`` and ``incremental``
    are cron expressions (5 fields, or 6 with seconds first), evaluated in UTC;
    ``retention`` is how long their backups are kept, e.g. ``"7d"``."""

    instance_id: str
    name: Name | None = None
    full: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    incremental: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    retention: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "7d"


class BackupScheduleCreateBody(_Body):
    backup_schedule: BackupScheduleCreate


class BackupStrategyCreate(_Body):
    instance_id: str | None = None
    swift_container: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    backend: str | None = None


class BackupStrategyCreateBody(_Body):
    backup_strategy: BackupStrategyCreate
