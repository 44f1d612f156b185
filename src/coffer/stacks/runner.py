"""Applying, showing and deleting stacks against a Coffer server, through ``CofferClient``.

Every command follows the same shape: read the state file and the server into an
``Observation``, ``decide`` a plan (pure), refuse it whole if it has refusals, else run it
wave by wave (resources of a wave are started together, then waited for), recording each
created or deleted resource in the state file at once. Ready means: an instance ACTIVE
and HEALTHY, or RESTART_REQUIRED (a configuration whose values wait for a restart, which
the stack does not do by itself); a cluster idle with every member ACTIVE. Waits may
block up to ``timeout`` seconds per resource; failures raise the client's errors
(``CofferClientError``) after recording what was done.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from coffer.client import (
    CofferAPIError,
    CofferClient,
    JSONObject,
    UserSpec,
    WaitUntil,
)
from coffer.stacks.errors import PlanRefused, StackError
from coffer.stacks.graph import waves
from coffer.stacks.intrinsics import ResourceRef
from coffer.stacks.outputs import resolve_outputs
from coffer.stacks.passwords import password_digest, password_matches
from coffer.stacks.plan import (
    LONG_STEPS,
    Action,
    AttachConfiguration,
    ChangePassword,
    Create,
    CreateDatabases,
    CreateUser,
    Delete,
    DeleteDatabase,
    DeleteUser,
    DetachConfiguration,
    Grant,
    GrowVolume,
    Keep,
    Observation,
    ObservedCluster,
    ObservedInstance,
    Plan,
    RecordedResource,
    Rename,
    ResizeFlavor,
    Revoke,
    Step,
    Update,
    decide,
)
from coffer.stacks.resources import (
    DEFAULT_HOST,
    ClusterSpec,
    InstanceSpec,
    ResourceType,
    StackUserSpec,
)
from coffer.stacks.state import StateStore
from coffer.stacks.template import Resource, Stack

__all__ = ["ResourceResult", "StackReport", "StackRunner"]

EventCallback = Callable[[str], None]


@dataclass(frozen=True)
class ResourceResult:
    """One row of a report: ``action`` is what was (apply, delete) or would be (show)
    done: created, recreated, updated, unchanged, deleted, gone; or for show: create,
    update, in sync, delete, refused."""

    resource: str
    type: ResourceType
    id: str | None
    name: str | None
    action: str
    status: str | None
    changes: tuple[str, ...] = ()

    def to_json(self) -> JSONObject:
        return {
            "resource": self.resource,
            "type": self.type.value,
            "id": self.id,
            "name": self.name,
            "action": self.action,
            "status": self.status,
            "changes": list(self.changes),
        }


@dataclass(frozen=True)
class StackReport:
    stack: str
    resources: tuple[ResourceResult, ...]
    summary: str
    outputs: dict[str, Any] = field(default_factory=dict)
    refusals: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(r.action not in ("unchanged", "in sync") for r in self.resources)

    def to_json(self) -> JSONObject:
        return {
            "stack": self.stack,
            "summary": self.summary,
            "changed": self.changed,
            "resources": [r.to_json() for r in self.resources],
            "outputs": self.outputs,
            "refusals": list(self.refusals),
        }


def _status(kind: ResourceType, view: JSONObject | None) -> str | None:
    """An instance's status; a cluster's task, or ACTIVE when idle and all members are."""
    if view is None:
        return None
    if kind is ResourceType.INSTANCE:
        return str(view.get("status"))
    task = (view.get("task") or {}).get("name")
    members = [m for m in view.get("instances") or () if isinstance(m, dict)]
    if task == "NONE" and members and all(m.get("status") == "ACTIVE" for m in members):
        return "ACTIVE"
    return str(task)


def _observed_instance(view: JSONObject) -> ObservedInstance:
    datastore = view.get("datastore") or {}
    configuration = view.get("configuration")
    attached = (
        tuple(str(configuration[k]) for k in ("id", "name") if configuration.get(k))
        if isinstance(configuration, dict)
        else ()
    )
    replica_of = view.get("replica_of")
    return ObservedInstance(
        id=str(view["id"]),
        name=str(view.get("name")),
        flavor_id=str((view.get("flavor") or {}).get("id")),
        size=int((view.get("volume") or {}).get("size") or 0),
        datastore_type=str(datastore.get("type")),
        datastore_version=str(datastore.get("version")),
        configuration=attached,
        replica_of=str(replica_of.get("id")) if isinstance(replica_of, dict) else None,
    )


def _observed_cluster(view: JSONObject) -> ObservedCluster:
    datastore = view.get("datastore") or {}
    members = [m for m in view.get("instances") or () if isinstance(m, dict)]
    return ObservedCluster(
        id=str(view["id"]),
        name=str(view.get("name")),
        datastore_type=str(datastore.get("type")),
        datastore_version=str(datastore.get("version")),
        members=tuple(
            sorted(
                (
                    str((m.get("flavor") or {}).get("id")),
                    int((m.get("volume") or {}).get("size") or 0),
                )
                for m in members
            )
        ),
    )


def _client_user(user: StackUserSpec) -> UserSpec:
    host = None if user.host == DEFAULT_HOST else user.host
    return UserSpec(user.name, user.password, host, user.databases)


class StackRunner:
    """Runs stacks of one project; not thread-safe (it shares the client)."""

    def __init__(
        self,
        client: CofferClient,
        store: StateStore,
        *,
        timeout: float = 1200.0,
        interval: float = 2.0,
        on_event: EventCallback | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._timeout = timeout
        self._interval = interval
        self._on_event = on_event or (lambda _message: None)
        #: the status last reported of each resource, so progress shows only changes
        self._last_status: dict[str, str] = {}

    # ----------------------------------------------------------------------- observing

    def _view(self, kind: ResourceType, resource_id: str) -> JSONObject | None:
        try:
            if kind is ResourceType.INSTANCE:
                return self._client.get_instance(resource_id)
            return self._client.get_cluster(resource_id)
        except CofferAPIError as exc:
            if exc.not_found:
                return None
            raise

    def _catalog(self) -> tuple[dict[str, str], dict[str, frozenset[str]]]:
        flavors: dict[str, str] = {}
        for flavor in self._client.list_flavors():
            flavors[str(flavor.get("name"))] = str(flavor["id"])
            flavors[str(flavor["id"])] = str(flavor["id"])
        datastores = {
            str(d.get("name")): frozenset(
                str(v.get("name")) for v in d.get("versions") or () if isinstance(v, dict)
            )
            for d in self._client.list_datastores()
        }
        return flavors, datastores

    def _with_access(
        self, seen: ObservedInstance, spec: InstanceSpec | None, record: RecordedResource
    ) -> ObservedInstance:
        """``seen`` with its databases and users listed, when the stack manages any."""
        manages_databases = bool(record.databases) or bool(spec and spec.databases)
        manages_users = bool(record.users) or bool(spec and spec.users)
        if not manages_databases and not manages_users:
            return seen
        databases = frozenset(str(d.get("name")) for d in self._client.list_databases(seen.id))
        users = {
            f"{u.get('name')}@{u.get('host') or DEFAULT_HOST}": frozenset(
                str(d.get("name")) for d in u.get("databases") or () if isinstance(d, dict)
            )
            for u in self._client.list_users(seen.id)
        }
        return replace(seen, databases=databases, users=users)

    def observe(self, stack: Stack) -> tuple[Observation, dict[str, JSONObject]]:
        """The observation ``decide`` needs, and the server's view of each existing
        recorded resource."""
        recorded = self._store.load(stack.name)
        flavors, datastores = self._catalog()
        specs = {r.name: r.spec for r in stack.resources}
        observed: dict[str, ObservedInstance | ObservedCluster] = {}
        views: dict[str, JSONObject] = {}
        for name, record in recorded.items():
            view = self._view(record.type, record.id)
            if view is None:
                continue
            views[name] = view
            if record.type is ResourceType.CLUSTER:
                observed[name] = _observed_cluster(view)
                continue
            spec = specs.get(name)
            instance_spec = spec if isinstance(spec, InstanceSpec) else None
            observed[name] = self._with_access(_observed_instance(view), instance_spec, record)
        return Observation(recorded, observed, flavors, datastores), views

    # ----------------------------------------------------------------------- show

    def show(self, stack: Stack) -> StackReport:
        """What exists and what ``apply`` would do; changes nothing."""
        observation, views = self.observe(stack)
        plan = decide(stack, observation)
        rows = [self._planned_row(stack, a, views) for a in plan.actions]
        outputs = resolve_outputs(stack, views) if views else {}
        return StackReport(stack.name, tuple(rows), plan.summary(), outputs, plan.refusals)

    def _planned_row(
        self, stack: Stack, action: Action, views: Mapping[str, JSONObject]
    ) -> ResourceResult:
        view = views.get(action.resource)
        kind = action.type if isinstance(action, Delete) else stack.resource(action.resource).type
        label = {Create: "create", Update: "update", Keep: "in sync", Delete: "delete"}[
            type(action)
        ]
        changes = tuple(s.describe() for s in action.steps) if isinstance(action, Update) else ()
        return ResourceResult(
            action.resource,
            kind,
            str(view["id"]) if view else None,
            str(view.get("name")) if view else None,
            label,
            _status(kind, view) if view else "MISSING",
            changes,
        )

    # ----------------------------------------------------------------------- apply

    def plan(self, stack: Stack) -> Plan:
        """The plan ``apply`` would run; ``PlanRefused`` if it has refusals."""
        plan = decide(stack, self.observe(stack)[0])
        if plan.refusals:
            raise PlanRefused(plan.refusals)
        return plan

    def apply(self, stack: Stack) -> StackReport:
        """Bring the server to ``stack``: refuse the whole plan, or run it and wait until
        every resource is ready. Returns each resource's final state and the outputs."""
        observation, _ = self.observe(stack)
        plan = decide(stack, observation)
        if plan.refusals:
            raise PlanRefused(plan.refusals)
        self._on_event(f"stack {stack.name}: {plan.summary()}")
        records = dict(observation.recorded)
        rows: dict[str, ResourceResult] = {}
        views: dict[str, JSONObject] = {}
        for wave in plan.waves:
            self._run_wave(stack, wave, records, rows, views)
        for deletes in plan.deletes:
            self._delete_wave(stack.name, deletes, records, rows)
        ordered = [rows[a.resource] for a in plan.actions]
        outputs = resolve_outputs(stack, views)
        return StackReport(stack.name, tuple(ordered), plan.summary(), outputs)

    def _run_wave(
        self,
        stack: Stack,
        wave: tuple[Create | Update | Keep, ...],
        records: dict[str, RecordedResource],
        rows: dict[str, ResourceResult],
        views: dict[str, JSONObject],
    ) -> None:
        ids: dict[str, str] = {}
        for action in wave:
            resource = stack.resource(action.resource)
            if isinstance(action, Create):
                ids[action.resource] = self._create(resource, action, records)
                self._save(stack.name, records, resource, ids[action.resource])
            else:
                ids[action.resource] = action.id
        for action in wave:
            resource = stack.resource(action.resource)
            resource_id = ids[action.resource]
            steps: tuple[Step, ...] = action.steps if not isinstance(action, Keep) else ()
            if isinstance(action, Create) or steps:
                views[resource.name] = self._wait_ready(resource, resource_id)
            self._run_steps(resource, resource_id, steps)
            views[resource.name] = self._wait_ready(resource, resource_id)
            self._record_access(stack.name, resource, resource_id, records)
            rows[resource.name] = self._row(resource, action, views[resource.name])

    def _row(self, resource: Resource, action: Action, view: JSONObject) -> ResourceResult:
        if isinstance(action, Create):
            label = "recreated" if action.recreated else "created"
        else:
            label = "updated" if isinstance(action, Update) else "unchanged"
        changes = tuple(s.describe() for s in action.steps) if isinstance(action, Update) else ()
        return ResourceResult(
            resource.name,
            resource.type,
            str(view.get("id")),
            str(view.get("name")),
            label,
            _status(resource.type, view),
            changes,
        )

    def _create(
        self, resource: Resource, action: Create, records: Mapping[str, RecordedResource]
    ) -> str:
        spec = resource.spec
        self._on_event(f"{resource.name}: creating {resource.type.value} {spec.name}")
        if isinstance(spec, ClusterSpec):
            members = [
                (f, m.volume_size, None)
                for f, m in zip(action.flavor_ids, spec.instances, strict=True)
            ]
            view = self._client.create_cluster(
                spec.name, spec.datastore_type, spec.datastore_version, members
            )
            return str(view["id"])
        if spec.replica_of is not None:
            source = spec.replica_of
            if isinstance(source, ResourceRef):
                source = records[source.resource].id
            return str(self._client.create_replica(spec.name, source)["id"])
        view = self._client.create_instance(
            spec.name,
            flavor=action.flavor_ids[0],
            datastore=spec.datastore_type,
            datastore_version=spec.datastore_version,
            volume_size=spec.size,
            backup=spec.restore_point,
            configuration=spec.configuration,
        )
        return str(view["id"])

    def _save(
        self, stack: str, records: dict[str, RecordedResource], resource: Resource, resource_id: str
    ) -> None:
        records[resource.name] = RecordedResource(resource_id, resource.type, resource.depends_on)
        self._store.save(stack, records)

    def _wait_ready(self, resource: Resource, resource_id: str) -> JSONObject:
        """Wait until the resource is ready; each change of its status is an event."""

        def progress(view: JSONObject, elapsed: float) -> None:
            status = _status(resource.type, view) or "-"
            if self._last_status.get(resource.name) != status:
                self._on_event(f"{resource.name}: {status} ({elapsed:.0f}s)")
                self._last_status[resource.name] = status

        if resource.type is ResourceType.CLUSTER:
            return self._client.wait_for_cluster(
                resource_id, timeout=self._timeout, interval=self._interval, on_progress=progress
            )
        return self._client.wait_for_instance(
            resource_id,
            timeout=self._timeout,
            interval=self._interval,
            on_progress=progress,
            restart_required_is_ready=True,
        )

    def _run_steps(self, resource: Resource, instance_id: str, steps: tuple[Step, ...]) -> None:
        for step in steps:
            self._on_event(f"{resource.name}: {step.describe()}")
            self._run_step(instance_id, step)
            if isinstance(step, LONG_STEPS):
                self._wait_ready(resource, instance_id)

    def _run_step(self, instance_id: str, step: Step) -> None:
        client = self._client
        if isinstance(step, Rename):
            client.rename_instance(instance_id, step.name)
        elif isinstance(step, ResizeFlavor):
            client.resize_instance_flavor(instance_id, step.flavor_id)
        elif isinstance(step, GrowVolume):
            client.resize_instance_volume(instance_id, step.size)
        elif isinstance(step, DetachConfiguration):
            client.detach_configuration(instance_id)
        elif isinstance(step, AttachConfiguration):
            client.attach_configuration(instance_id, step.configuration)
        elif isinstance(step, CreateDatabases):
            for db in step.databases:
                client.create_databases(
                    instance_id, [db.name], character_set=db.character_set, collate=db.collate
                )
        elif isinstance(step, DeleteDatabase):
            client.delete_database(instance_id, step.name)
        elif isinstance(step, CreateUser):
            client.create_users(instance_id, [_client_user(step.user)])
        elif isinstance(step, DeleteUser):
            host = None if step.host == DEFAULT_HOST else step.host
            client.delete_user(instance_id, step.name, host=host)
        elif isinstance(step, Grant):
            host = None if step.user.host == DEFAULT_HOST else step.user.host
            client.grant_user_access(instance_id, step.user.name, step.databases, host=host)
        elif isinstance(step, Revoke):
            host = None if step.user.host == DEFAULT_HOST else step.user.host
            client.revoke_user_access(instance_id, step.user.name, step.database, host=host)
        elif isinstance(step, ChangePassword):
            client.change_user_passwords(instance_id, [_client_user(step.user)])

    def _record_access(
        self, stack: str, resource: Resource, resource_id: str, records: dict[str, RecordedResource]
    ) -> None:
        """Record the databases and users the template declares (they now exist)."""
        spec = resource.spec
        old = records.get(resource.name)
        users: dict[str, str] = {}
        if isinstance(spec, InstanceSpec):
            for user in spec.users:
                digest = old.users.get(user.key) if old is not None else None
                if digest is None or not password_matches(user.password, digest):
                    digest = password_digest(user.password)
                users[user.key] = digest
            databases = frozenset(d.name for d in spec.databases)
        else:
            databases = frozenset()
        new = RecordedResource(resource_id, resource.type, resource.depends_on, databases, users)
        if new != old:
            records[resource.name] = new
            self._store.save(stack, records)

    # ----------------------------------------------------------------------- delete

    def _delete_wave(
        self,
        stack: str,
        wave: tuple[Delete, ...],
        records: dict[str, RecordedResource],
        rows: dict[str, ResourceResult],
    ) -> None:
        started: list[Delete] = []
        for action in wave:
            self._on_event(f"{action.resource}: deleting {action.type.value} {action.id}")
            try:
                if action.type is ResourceType.CLUSTER:
                    self._client.delete_cluster(action.id)
                else:
                    self._client.delete_instance(action.id)
                started.append(action)
            except CofferAPIError as exc:
                if not exc.not_found:
                    raise
        for action in started:
            if action.type is ResourceType.CLUSTER:
                self._client.wait_for_cluster(
                    action.id,
                    until=WaitUntil.DELETED,
                    timeout=self._timeout,
                    interval=self._interval,
                )
            else:
                self._client.wait_for_instance(
                    action.id,
                    until=WaitUntil.DELETED,
                    timeout=self._timeout,
                    interval=self._interval,
                )
        for action in wave:
            records.pop(action.resource, None)
            rows[action.resource] = ResourceResult(
                action.resource,
                action.type,
                action.id,
                None,
                "deleted" if action in started else "gone",
                "DELETED",
            )
        self._store.save(stack, records)

    def delete(self, stack_name: str) -> StackReport:
        """Delete every resource the stack's state file records, dependents first, wait
        until each is gone, then forget the stack. A stack with no state file is
        reported with no resources."""
        records = self._store.load(stack_name)
        if not records:
            self._store.remove(stack_name)
            return StackReport(stack_name, (), "nothing to delete")
        depends = {n: set(r.depends_on) & set(records) for n, r in records.items()}
        try:
            ordered = list(reversed(waves(depends)))
        except ValueError as exc:
            raise StackError(f"the state of stack {stack_name!r} is inconsistent: {exc}") from None
        rows: dict[str, ResourceResult] = {}
        order: list[str] = []
        for names in ordered:
            deletes = tuple(Delete(n, records[n].id, records[n].type) for n in names)
            self._delete_wave(stack_name, deletes, records, rows)
            order += names
        self._store.remove(stack_name)
        return StackReport(stack_name, tuple(rows[n] for n in order), f"{len(order)} deleted")
