"""Deciding what an apply does: ``decide(stack, observation)`` compares the template with
what the server shows and what the stack's state file recorded, and returns typed
actions in dependency order, or the reasons the template cannot be reached in place.

Pure: no I/O. What can change in place follows Heat's update-allowed properties:

- an instance's ``name`` (rename), ``flavor`` (resize), ``size`` (grow only),
  ``configuration`` (attach, detach, or detach then attach), its ``databases`` and
  ``users`` (created, deleted when a template that declared them no longer does, access
  granted and revoked, a changed password set anew);
- nothing of a cluster, nor an instance's datastore, ``replica_of`` or ``restore_point``:
  a change there is refused with the property named, and nothing is done.

Resources recorded in the state file but gone from the template are deleted, dependents
first. ``restore_point`` is only used at creation; the server does not show it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from coffer.stacks.graph import waves
from coffer.stacks.intrinsics import ResourceRef
from coffer.stacks.passwords import password_matches
from coffer.stacks.resources import (
    ClusterSpec,
    DatabaseSpec,
    InstanceSpec,
    ResourceType,
    StackUserSpec,
)
from coffer.stacks.template import Resource, Stack

__all__ = [
    "Action",
    "AttachConfiguration",
    "ChangePassword",
    "Create",
    "CreateDatabases",
    "CreateUser",
    "Delete",
    "DeleteDatabase",
    "DeleteUser",
    "DetachConfiguration",
    "Grant",
    "GrowVolume",
    "Keep",
    "Observation",
    "ObservedCluster",
    "ObservedInstance",
    "Plan",
    "RecordedResource",
    "Rename",
    "ResizeFlavor",
    "Revoke",
    "Step",
    "Update",
    "creation_steps",
    "decide",
]


# --------------------------------------------------------------------------- observation


@dataclass(frozen=True)
class ObservedInstance:
    """An instance as the server shows it. ``configuration`` holds the attached group's
    id and name (empty: none). ``databases``/``users`` are None when not listed (the
    stack manages none on it); ``users`` maps ``name@host`` to the databases it may use."""

    id: str
    name: str
    flavor_id: str
    size: int
    datastore_type: str
    datastore_version: str
    configuration: tuple[str, ...] = ()
    replica_of: str | None = None
    databases: frozenset[str] | None = None
    users: Mapping[str, frozenset[str]] | None = None


@dataclass(frozen=True)
class ObservedCluster:
    id: str
    name: str
    datastore_type: str
    datastore_version: str
    #: (flavor id, volume size) of each member, sorted
    members: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class RecordedResource:
    """What the state file remembers of a resource the stack made: its id, type, what
    it depended on, and the databases and users (``name@host`` → password digest) the
    template declared at the last apply."""

    id: str
    type: ResourceType
    depends_on: frozenset[str] = frozenset()
    databases: frozenset[str] = frozenset()
    users: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    """Everything ``decide`` looks at besides the template. ``observed`` holds the
    recorded resources the server still has; ``flavors`` maps flavor names and ids to
    ids; ``datastores`` maps each datastore type to its version names."""

    recorded: Mapping[str, RecordedResource]
    observed: Mapping[str, ObservedInstance | ObservedCluster]
    flavors: Mapping[str, str]
    datastores: Mapping[str, frozenset[str]]


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Rename:
    name: str

    def describe(self) -> str:
        return f"rename to {self.name}"


@dataclass(frozen=True)
class ResizeFlavor:
    flavor_id: str
    flavor: str

    def describe(self) -> str:
        return f"resize flavor to {self.flavor}"


@dataclass(frozen=True)
class GrowVolume:
    size: int

    def describe(self) -> str:
        return f"grow volume to {self.size} GB"


@dataclass(frozen=True)
class DetachConfiguration:
    def describe(self) -> str:
        return "detach configuration"


@dataclass(frozen=True)
class AttachConfiguration:
    configuration: str

    def describe(self) -> str:
        return f"attach configuration {self.configuration}"


@dataclass(frozen=True)
class CreateDatabases:
    databases: tuple[DatabaseSpec, ...]

    def describe(self) -> str:
        return f"create databases {', '.join(d.name for d in self.databases)}"


@dataclass(frozen=True)
class DeleteDatabase:
    name: str

    def describe(self) -> str:
        return f"delete database {self.name}"


@dataclass(frozen=True)
class CreateUser:
    user: StackUserSpec

    def describe(self) -> str:
        return f"create user {self.user.key}"


@dataclass(frozen=True)
class DeleteUser:
    name: str
    host: str

    def describe(self) -> str:
        return f"delete user {self.name}@{self.host}"


@dataclass(frozen=True)
class Grant:
    user: StackUserSpec
    databases: tuple[str, ...]

    def describe(self) -> str:
        return f"grant {self.user.key} {', '.join(self.databases)}"


@dataclass(frozen=True)
class Revoke:
    user: StackUserSpec
    database: str

    def describe(self) -> str:
        return f"revoke {self.user.key} {self.database}"


@dataclass(frozen=True)
class ChangePassword:
    user: StackUserSpec

    def describe(self) -> str:
        return f"set password of {self.user.key}"


Step = (
    Rename
    | ResizeFlavor
    | GrowVolume
    | DetachConfiguration
    | AttachConfiguration
    | CreateDatabases
    | DeleteDatabase
    | CreateUser
    | DeleteUser
    | Grant
    | Revoke
    | ChangePassword
)
#: steps that start a long operation: the instance must be ready again before the next
LONG_STEPS = (ResizeFlavor, GrowVolume, DetachConfiguration, AttachConfiguration)


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Create:
    """Create the resource, wait until it is ready, then run ``steps`` (an instance's
    databases and users)."""

    resource: str
    #: the flavor id of the instance or of each cluster member
    flavor_ids: tuple[str, ...]
    steps: tuple[Step, ...] = ()
    #: the resource was recorded, but the server no longer has it
    recreated: bool = False


@dataclass(frozen=True)
class Update:
    resource: str
    id: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Keep:
    resource: str
    id: str


@dataclass(frozen=True)
class Delete:
    resource: str
    id: str
    type: ResourceType


Action = Create | Update | Keep | Delete


@dataclass(frozen=True)
class Plan:
    """Creates, updates and keeps in dependency waves, then deletes (dependents first);
    ``refusals`` non-empty means the plan must not run."""

    waves: tuple[tuple[Create | Update | Keep, ...], ...]
    deletes: tuple[tuple[Delete, ...], ...]
    refusals: tuple[str, ...] = ()

    @property
    def actions(self) -> list[Action]:
        out: list[Action] = [a for wave in self.waves for a in wave]
        out += [d for wave in self.deletes for d in wave]
        return out

    @property
    def changes_anything(self) -> bool:
        return any(not isinstance(a, Keep) for a in self.actions)

    def summary(self) -> str:
        """One sentence: what the plan decided."""
        counts: dict[str, int] = {}
        for action in self.actions:
            kind = type(action).__name__.lower()
            counts[kind] = counts.get(kind, 0) + 1
        if self.refusals:
            return f"refused: {'; '.join(self.refusals)}"
        parts = [f"{n} to {k}" for k, n in counts.items() if k != "keep"]
        if not parts:
            return "no change"
        return ", ".join(parts) + (" (others unchanged)" if "keep" in counts else "")


# --------------------------------------------------------------------------- deciding


def _flavor(flavors: Mapping[str, str], flavor: str, where: str, refusals: list[str]) -> str:
    found = flavors.get(flavor)
    if found is None:
        known = ", ".join(sorted(flavors)) or "none"
        refusals.append(f"{where}: flavor {flavor!r} does not exist (flavors: {known})")
        return ""
    return found


def _check_datastore(
    datastores: Mapping[str, frozenset[str]],
    kind: str | None,
    version: str | None,
    where: str,
    refusals: list[str],
) -> None:
    if kind is None:
        return
    if kind not in datastores:
        known = ", ".join(sorted(datastores)) or "none"
        refusals.append(f"{where}: datastore_type {kind!r} does not exist (datastores: {known})")
    elif version is not None and version not in datastores[kind]:
        known = ", ".join(sorted(datastores[kind])) or "none"
        refusals.append(
            f"{where}: datastore_version {version!r} of {kind} does not exist (versions: {known})"
        )


def _replica_source(spec: InstanceSpec, observation: Observation) -> tuple[str | None, bool]:
    """The id ``replica_of`` names (None: not a replica) and whether it is known yet."""
    ref = spec.replica_of
    if isinstance(ref, ResourceRef):
        source = observation.observed.get(ref.resource)
        return (source.id, True) if source is not None else (None, False)
    return ref, True


def _immutable_instance(
    resource: Resource, spec: InstanceSpec, seen: ObservedInstance, observation: Observation
) -> list[str]:
    where = f"{resource.name} ({seen.id})"
    refusals = []
    if spec.datastore_type is not None and spec.datastore_type != seen.datastore_type:
        refusals.append(
            f"{where}: datastore_type cannot change in place "
            f"({seen.datastore_type} -> {spec.datastore_type})"
        )
    if spec.datastore_version is not None and spec.datastore_version != seen.datastore_version:
        refusals.append(
            f"{where}: datastore_version cannot change in place "
            f"({seen.datastore_version} -> {spec.datastore_version})"
        )
    source, known = _replica_source(spec, observation)
    if not known or source != seen.replica_of:
        refusals.append(
            f"{where}: replica_of cannot change in place "
            f"({seen.replica_of or 'none'} -> {source or 'a new instance'})"
        )
    return refusals


def _user_steps(
    spec: InstanceSpec, seen: ObservedInstance, recorded: RecordedResource | None
) -> list[Step]:
    observed = seen.users or {}
    old = recorded.users if recorded is not None else {}
    steps: list[Step] = []
    for user in spec.users:
        access = observed.get(user.key)
        if access is None:
            steps.append(CreateUser(user))
            continue
        missing = tuple(d for d in user.databases if d not in access)
        if missing:
            steps.append(Grant(user, missing))
        steps += [Revoke(user, d) for d in sorted(access - set(user.databases))]
        digest = old.get(user.key)
        if digest is None or not password_matches(user.password, digest):
            steps.append(ChangePassword(user))
    wanted = {u.key for u in spec.users}
    for key in sorted(set(old) - wanted):
        if key in observed:
            name, _, host = key.rpartition("@")
            steps.append(DeleteUser(name, host))
    return steps


def _database_steps(
    spec: InstanceSpec, seen: ObservedInstance, recorded: RecordedResource | None
) -> tuple[list[Step], list[Step]]:
    """(creations, deletions): created before users, deleted after them."""
    present = seen.databases or frozenset()
    new = tuple(d for d in spec.databases if d.name not in present)
    wanted = {d.name for d in spec.databases}
    old = recorded.databases if recorded is not None else frozenset()
    gone = [DeleteDatabase(name) for name in sorted((old - wanted) & present)]
    return ([CreateDatabases(new)] if new else []), list(gone)


def _instance_steps(
    spec: InstanceSpec,
    seen: ObservedInstance,
    recorded: RecordedResource | None,
    flavor_id: str,
) -> tuple[list[Step], list[str]]:
    steps: list[Step] = []
    refusals: list[str] = []
    if spec.name != seen.name:
        steps.append(Rename(spec.name))
    if flavor_id and flavor_id != seen.flavor_id:
        steps.append(ResizeFlavor(flavor_id, spec.flavor))
    if spec.size > seen.size:
        steps.append(GrowVolume(spec.size))
    elif spec.size < seen.size:
        refusals.append(
            f"{seen.name} ({seen.id}): size cannot shrink ({seen.size} GB -> {spec.size} GB); "
            "volumes only grow"
        )
    if spec.configuration is None and seen.configuration:
        steps.append(DetachConfiguration())
    elif spec.configuration is not None and spec.configuration not in seen.configuration:
        if seen.configuration:
            steps.append(DetachConfiguration())
        steps.append(AttachConfiguration(spec.configuration))
    creations, deletions = _database_steps(spec, seen, recorded)
    steps += creations + _user_steps(spec, seen, recorded) + deletions
    return steps, refusals


def creation_steps(spec: InstanceSpec) -> tuple[Step, ...]:
    """What follows the creation of a new instance: its databases, then its users."""
    steps: list[Step] = [CreateDatabases(spec.databases)] if spec.databases else []
    return (*steps, *(CreateUser(u) for u in spec.users))


def _decide_instance(
    resource: Resource, spec: InstanceSpec, observation: Observation, refusals: list[str]
) -> Create | Update | Keep:
    flavor_id = _flavor(observation.flavors, spec.flavor, resource.name, refusals)
    seen = observation.observed.get(resource.name)
    recorded = observation.recorded.get(resource.name)
    if not isinstance(seen, ObservedInstance):
        _check_datastore(
            observation.datastores,
            spec.datastore_type,
            spec.datastore_version,
            resource.name,
            refusals,
        )
        first = creation_steps(spec)
        return Create(resource.name, (flavor_id,), first, recreated=recorded is not None)
    refusals += _immutable_instance(resource, spec, seen, observation)
    steps, problems = _instance_steps(spec, seen, recorded, flavor_id)
    refusals += problems
    return Update(resource.name, seen.id, tuple(steps)) if steps else Keep(resource.name, seen.id)


def _decide_cluster(
    resource: Resource, spec: ClusterSpec, observation: Observation, refusals: list[str]
) -> Create | Keep:
    flavor_ids = tuple(
        _flavor(observation.flavors, m.flavor, resource.name, refusals) for m in spec.instances
    )
    seen = observation.observed.get(resource.name)
    if not isinstance(seen, ObservedCluster):
        _check_datastore(
            observation.datastores,
            spec.datastore_type,
            spec.datastore_version,
            resource.name,
            refusals,
        )
        recreated = resource.name in observation.recorded
        return Create(resource.name, flavor_ids, recreated=recreated)
    wanted = {
        "name": (seen.name, spec.name),
        "datastore_type": (seen.datastore_type, spec.datastore_type),
        "datastore_version": (seen.datastore_version, spec.datastore_version),
        "instances": (
            seen.members,
            tuple(sorted(zip(flavor_ids, (m.volume_size for m in spec.instances), strict=True))),
        ),
    }
    changed = sorted(key for key, (now, then) in wanted.items() if now != then)
    if changed and all(flavor_ids):
        refusals.append(
            f"{resource.name} ({seen.id}): an OS::Trove::Cluster cannot change in place "
            f"({', '.join(changed)} changed); delete the stack and apply it again"
        )
    return Keep(resource.name, seen.id)


def _delete_waves(observation: Observation, stack: Stack) -> tuple[tuple[Delete, ...], ...]:
    """Recorded resources the template dropped, dependents first."""
    names = {r.name for r in stack.resources}
    gone = {n: r for n, r in observation.recorded.items() if n not in names}
    depends = {n: set(r.depends_on) & set(gone) for n, r in gone.items()}
    ordered = list(reversed(waves(depends)))
    return tuple(
        tuple(Delete(n, gone[n].id, gone[n].type) for n in wave if n in observation.observed)
        for wave in ordered
    )


def decide(stack: Stack, observation: Observation) -> Plan:
    """The plan that brings the server to ``stack``; its ``refusals`` say why it cannot
    (then it must not run). Deterministic for equal inputs."""
    refusals: list[str] = []
    decided: dict[str, Create | Update | Keep] = {}
    for resource in stack.resources:
        recorded = observation.recorded.get(resource.name)
        if recorded is not None and recorded.type is not resource.type:
            refusals.append(
                f"{resource.name} ({recorded.id}) is a {recorded.type.value}; the template "
                f"makes it a {resource.type.value}, which cannot happen in place"
            )
            decided[resource.name] = Keep(resource.name, recorded.id)
            continue
        if isinstance(resource.spec, InstanceSpec):
            decided[resource.name] = _decide_instance(
                resource, resource.spec, observation, refusals
            )
        else:
            decided[resource.name] = _decide_cluster(resource, resource.spec, observation, refusals)
    ordered = tuple(tuple(decided[n] for n in wave) for wave in waves(stack.depends))
    deletes = tuple(w for w in _delete_waves(observation, stack) if w)
    return Plan(ordered, deletes, tuple(refusals))
