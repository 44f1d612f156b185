"""The two resource types and their Heat properties, validated into frozen specs.

``OS::Trove::Instance``: ``name`` (default: the physical name ``<stack>-<resource>``),
``flavor`` and ``size`` (1-150 GB) required, ``datastore_type``, ``datastore_version``
(needs a type), ``databases`` (``name``, optional ``character_set``, ``collate``),
``users`` (``name``, ``password``, ``host`` default ``%``, ``databases``: at least one,
each declared in ``databases``), ``replica_of`` (an instance id, or ``get_resource`` of
another instance), ``configuration`` (a configuration group id) and ``restore_point``
(a backup id). ``networks``, ``availability_zone`` and ``replica_count`` are Heat
properties Coffer has no use for; a template giving them is refused.

``OS::Trove::Cluster``: ``name`` (default: the physical name), ``datastore_type``,
``datastore_version`` and ``instances`` (each ``flavor`` and ``volume_size``) required.

Strings may be given as YAML numbers (``datastore_version: 15``); quote versions such
as ``"7.10"`` that a number would change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from coffer.stacks.intrinsics import AttrRef, ResourceRef

__all__ = [
    "ClusterSpec",
    "DatabaseSpec",
    "InstanceSpec",
    "MemberSpec",
    "ResourceType",
    "StackUserSpec",
    "validate_properties",
]

MAX_NAME = 255
MIN_SIZE, MAX_SIZE = 1, 150
_DB_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-$.]*$")
_USER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-.]*$")
DEFAULT_HOST = "%"


class ResourceType(StrEnum):
    INSTANCE = "OS::Trove::Instance"
    CLUSTER = "OS::Trove::Cluster"


@dataclass(frozen=True)
class DatabaseSpec:
    name: str
    character_set: str | None = None
    collate: str | None = None


@dataclass(frozen=True)
class StackUserSpec:
    """A user a template declares; ``password`` is never part of a ``repr``."""

    name: str
    password: str = field(repr=False)
    host: str = DEFAULT_HOST
    databases: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """``name@host``: how the state file and the plan name the user."""
        return f"{self.name}@{self.host}"


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    flavor: str
    size: int
    datastore_type: str | None = None
    datastore_version: str | None = None
    databases: tuple[DatabaseSpec, ...] = ()
    users: tuple[StackUserSpec, ...] = ()
    replica_of: str | ResourceRef | None = None
    configuration: str | None = None
    restore_point: str | None = None


@dataclass(frozen=True)
class MemberSpec:
    flavor: str
    volume_size: int


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    datastore_type: str
    datastore_version: str
    instances: tuple[MemberSpec, ...]


_INSTANCE_PROPERTIES = frozenset(
    {
        "name",
        "flavor",
        "size",
        "datastore_type",
        "datastore_version",
        "databases",
        "users",
        "replica_of",
        "configuration",
        "restore_point",
    }
)
_NOT_SUPPORTED = frozenset({"networks", "availability_zone", "replica_count"})
_CLUSTER_PROPERTIES = frozenset({"name", "datastore_type", "datastore_version", "instances"})
_MEMBER_KEYS = frozenset({"flavor", "volume_size"})


class _Reader:
    """Reads typed values out of one mapping, collecting a sentence per problem."""

    def __init__(self, data: Mapping[str, Any], where: str, problems: list[str]) -> None:
        self.data = data
        self.where = where
        self.problems = problems

    def problem(self, key: str, sentence: str) -> None:
        self.problems.append(f"{self.where}.{key} {sentence}")

    def string(self, key: str, *, required: bool = False, max_length: int = MAX_NAME) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.problem(key, "is required")
            return None
        if isinstance(value, (ResourceRef, AttrRef)):
            self.problem(key, "cannot be get_resource or get_attr here")
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problem(key, "must be a string")
            return None
        text = str(value)
        if not text or len(text) > max_length:
            self.problem(key, f"must be 1 to {max_length} characters long")
            return None
        return text

    def integer(self, key: str, *, low: int, high: int) -> int | None:
        value = self.data.get(key)
        if value is None:
            self.problem(key, "is required")
            return None
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, "must be an integer")
            return None
        if not low <= value <= high:
            self.problem(key, f"must be within {low}..{high} (got {value})")
            return None
        return value

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(key, "must be a list")
            return []
        return value

    def unknown(self, allowed: frozenset[str], *, what: str) -> None:
        extra = sorted(str(k) for k in self.data if k not in allowed)
        if extra:
            self.problems.append(
                f"{self.where} has unknown {what}: {', '.join(extra)} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )


def _databases(reader: _Reader) -> tuple[DatabaseSpec, ...]:
    out: list[DatabaseSpec] = []
    for i, item in enumerate(reader.items("databases")):
        if not isinstance(item, dict):
            reader.problem(f"databases[{i}]", "must be a mapping with a name")
            continue
        sub = _Reader(item, f"{reader.where}.databases[{i}]", reader.problems)
        sub.unknown(frozenset({"name", "character_set", "collate"}), what="keys")
        name = sub.string("name", required=True, max_length=64)
        if name is not None and not _DB_NAME.match(name):
            sub.problem("name", f"{name!r} holds characters a database name cannot")
            continue
        charset, collate = sub.string("character_set"), sub.string("collate")
        if name is not None:
            out.append(DatabaseSpec(name, charset, collate))
    names = [d.name for d in out]
    for name in sorted({n for n in names if names.count(n) > 1}):
        reader.problem("databases", f"declares {name!r} twice")
    return tuple(out)


def _users(reader: _Reader, databases: tuple[DatabaseSpec, ...]) -> tuple[StackUserSpec, ...]:
    declared = {d.name for d in databases}
    out: list[StackUserSpec] = []
    for i, item in enumerate(reader.items("users")):
        if not isinstance(item, dict):
            reader.problem(f"users[{i}]", "must be a mapping with name, password, databases")
            continue
        sub = _Reader(item, f"{reader.where}.users[{i}]", reader.problems)
        sub.unknown(frozenset({"name", "password", "host", "databases"}), what="keys")
        name = sub.string("name", required=True, max_length=16)
        if name is not None and not _USER_NAME.match(name):
            sub.problem("name", f"{name!r} holds characters a user name cannot")
            name = None
        password = item.get("password")
        if not isinstance(password, str) or not password:
            sub.problem("password", "is required (a non-empty string)")
        host = sub.string("host") or DEFAULT_HOST
        dbs = [str(d) for d in sub.items("databases") if isinstance(d, (str, int))]
        if not dbs:
            sub.problem("databases", "must name at least one database")
        for db in dbs:
            if db not in declared:
                sub.problem("databases", f"names {db!r}, which the instance's databases lack")
        if name is not None and isinstance(password, str) and password:
            out.append(StackUserSpec(name, password, host, tuple(dbs)))
    keys = [u.key for u in out]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        reader.problem("users", f"declares {key!r} twice")
    return tuple(out)


def _instance(reader: _Reader, physical_name: str) -> InstanceSpec | None:
    given = set(reader.data)
    for key in sorted(given & _NOT_SUPPORTED):
        reader.problem(key, "is a Heat property Coffer does not support")
    reader.unknown(_INSTANCE_PROPERTIES | _NOT_SUPPORTED, what="properties")
    before = len(reader.problems)
    name = reader.string("name") or physical_name
    flavor = reader.string("flavor", required=True)
    size = reader.integer("size", low=MIN_SIZE, high=MAX_SIZE)
    datastore_type = reader.string("datastore_type")
    datastore_version = reader.string("datastore_version")
    if datastore_version is not None and datastore_type is None:
        reader.problem("datastore_version", "needs datastore_type as well")
    databases = _databases(reader)
    users = _users(reader, databases)
    replica_of: str | ResourceRef | None
    raw_replica = reader.data.get("replica_of")
    if isinstance(raw_replica, ResourceRef):
        replica_of = raw_replica
    else:
        replica_of = reader.string("replica_of")
    configuration = reader.string("configuration")
    restore_point = reader.string("restore_point")
    if replica_of is not None and restore_point is not None:
        reader.problem("replica_of", "and restore_point cannot both be given")
    if len(reader.problems) > before or flavor is None or size is None:
        return None
    return InstanceSpec(
        name=name,
        flavor=flavor,
        size=size,
        datastore_type=datastore_type,
        datastore_version=datastore_version,
        databases=databases,
        users=users,
        replica_of=replica_of,
        configuration=configuration,
        restore_point=restore_point,
    )


def _cluster(reader: _Reader, physical_name: str) -> ClusterSpec | None:
    reader.unknown(_CLUSTER_PROPERTIES, what="properties")
    before = len(reader.problems)
    name = reader.string("name") or physical_name
    datastore_type = reader.string("datastore_type", required=True)
    datastore_version = reader.string("datastore_version", required=True)
    members: list[MemberSpec] = []
    items = reader.items("instances")
    if not items and "instances" not in reader.data:
        reader.problem("instances", "is required")
    elif not items:
        reader.problem("instances", "must list at least one member")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            reader.problem(f"instances[{i}]", "must be a mapping with flavor and volume_size")
            continue
        sub = _Reader(item, f"{reader.where}.instances[{i}]", reader.problems)
        for key in sorted(set(item) & {"networks", "availability_zone"}):
            sub.problem(str(key), "is a Heat property Coffer does not support")
        sub.unknown(_MEMBER_KEYS | {"networks", "availability_zone"}, what="keys")
        flavor = sub.string("flavor", required=True)
        size = sub.integer("volume_size", low=MIN_SIZE, high=MAX_SIZE)
        if flavor is not None and size is not None:
            members.append(MemberSpec(flavor, size))
    if len(reader.problems) > before or datastore_type is None or datastore_version is None:
        return None
    return ClusterSpec(name, datastore_type, datastore_version, tuple(members))


def validate_properties(
    kind: ResourceType,
    properties: Mapping[str, Any],
    *,
    physical_name: str,
    where: str,
    problems: list[str],
) -> InstanceSpec | ClusterSpec | None:
    """The spec of one resource, or None with a sentence per problem added to
    ``problems`` (each naming ``where`` and the property)."""
    reader = _Reader(properties, where, problems)
    if kind is ResourceType.INSTANCE:
        return _instance(reader, physical_name)
    return _cluster(reader, physical_name)
