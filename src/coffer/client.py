"""Typed client of Coffer's REST API: the Trove v1.0 surface plus Coffer's extensions.

One ``CofferClient`` talks to one project endpoint (``http://H:P/v1.0/<project_id>``) with
one token. Methods return the JSON objects the server sends, unwrapped from Trove's
singular or plural key (``get_instance`` returns the ``instance`` object, ``list_users``
the ``users`` list); lists follow Trove's ``links``/``marker`` pagination to the end.
The client knows nothing of terminals: the CLI, the Ansible modules and the dashboard
tests all use it as it is. Pass ``transport=httpx.MockTransport(...)`` to test without a
server.

Exceptions::

    CofferClientError                   root: everything this module raises
    ├── CofferAPIError                  the server answered with an HTTP error
    │                                   (status, fault, message from Trove's envelope)
    ├── CofferConnectionError           the server could not be reached, or did not answer
    ├── CofferResponseError             the server's reply is not what the API promises
    ├── CofferAmbiguousNameError        a name given for an instance, backup or cluster
    │                                   matches several
    └── CofferWaitError                 a wait ended without reaching its goal
        ├── CofferInstanceFailedError   the instance went to status ERROR
        ├── CofferBackupFailedError     the backup went to FAILED or DELETE_FAILED
        ├── CofferClusterFailedError    the cluster recorded a fault, or a member went to ERROR
        └── CofferWaitTimeoutError      the deadline passed first

Passwords given to this client travel only in request bodies: they are never part of a
URL, an exception message or a ``repr``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, NamedTuple, TypedDict, overload
from urllib.parse import parse_qs, quote, urlsplit

import httpx

__all__ = [
    "READY_OPERATING_STATUS",
    "READY_STATUS",
    "ClusterMemberSpec",
    "ClusterMembers",
    "CofferAPIError",
    "CofferAmbiguousNameError",
    "CofferBackupFailedError",
    "CofferClient",
    "CofferClientError",
    "CofferClusterFailedError",
    "CofferConnectionError",
    "CofferInstanceFailedError",
    "CofferResponseError",
    "CofferWaitError",
    "CofferWaitTimeoutError",
    "CreatedProject",
    "Credentials",
    "JSONObject",
    "ProgressCallback",
    "UserSpec",
    "WaitUntil",
    "user_path_segment",
]

JSONObject = dict[str, Any]
#: Called on every poll of a wait with the instance (backup, cluster) view and the seconds
#: elapsed.
ProgressCallback = Callable[[JSONObject, float], None]

READY_STATUS = "ACTIVE"
READY_OPERATING_STATUS = "HEALTHY"
ERROR_STATUS = "ERROR"
RESTART_REQUIRED_STATUS = "RESTART_REQUIRED"
BACKUP_COMPLETED = "COMPLETED"
BACKUP_FAILED = "FAILED"
BACKUP_DELETE_FAILED = "DELETE_FAILED"
#: a cluster's ``task.name`` when no operation runs on it
CLUSTER_IDLE_TASK = "NONE"


class Credentials(TypedDict):
    """What a project's user needs to talk to Coffer (also the ``credentials.json`` file)."""

    endpoint: str
    project_id: str
    token: str


class CreatedProject(TypedDict):
    """Reply of ``create_project``: the new project and a first token for it."""

    project: JSONObject
    credentials: Credentials


# --------------------------------------------------------------------------- exceptions


class CofferClientError(Exception):
    """Root of every error raised by this module; ``str()`` is one line for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CofferAPIError(CofferClientError):
    """The server answered with an HTTP error, in Trove's ``{fault: {code, message}}``."""

    def __init__(self, status: int, fault: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.fault = fault

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})"

    @property
    def not_found(self) -> bool:
        return self.status == 404


class CofferConnectionError(CofferClientError):
    """No HTTP answer at all from ``url``: refused, unresolvable, or timed out."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class CofferResponseError(CofferClientError):
    """The server answered 2xx with a body that does not have the promised shape."""


class CofferAmbiguousNameError(CofferClientError):
    """A name given where one instance (or one ``kind`` of thing) is meant matches several;
    use the id."""

    def __init__(self, name: str, ids: Sequence[str], *, kind: str = "instance") -> None:
        super().__init__(
            f"{len(ids)} {kind}s are named {name!r} ({', '.join(ids)}); use the id instead"
        )
        self.name = name
        self.ids = tuple(ids)
        self.kind = kind


class CofferWaitError(CofferClientError):
    """A wait ended without reaching its goal; ``instance`` is the last view seen.

    A backup wait sets ``backup_id`` and ``backup`` (its last view, None if none was
    seen); its ``instance_id`` is then the backed-up instance's ('' if unknown) and
    ``instance`` is None. A cluster wait sets ``cluster_id`` and ``cluster`` (its last
    view, None if none was seen); its ``instance_id`` is then the failed member's ('' if
    none) and ``instance`` that member's entry in the cluster view, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        instance_id: str,
        instance: JSONObject | None,
        backup_id: str | None = None,
        backup: JSONObject | None = None,
        cluster_id: str | None = None,
        cluster: JSONObject | None = None,
    ) -> None:
        super().__init__(message)
        self.instance_id = instance_id
        self.instance = instance
        self.backup_id = backup_id
        self.backup = backup
        self.cluster_id = cluster_id
        self.cluster = cluster


class CofferInstanceFailedError(CofferWaitError):
    """The instance went to status ERROR; ``fault`` is its fault record, if any."""

    @property
    def fault(self) -> JSONObject | None:
        fault = (self.instance or {}).get("fault")
        return fault if isinstance(fault, dict) else None


class CofferBackupFailedError(CofferWaitError):
    """The backup went to FAILED (or DELETE_FAILED while deleting); ``fail_reason`` says
    why, as the server recorded it."""

    @property
    def fail_reason(self) -> str | None:
        reason = (self.backup or {}).get("fail_reason")
        return str(reason) if reason else None


class CofferClusterFailedError(CofferWaitError):
    """The cluster's operation failed: the cluster recorded a ``fault``, or a member
    (``instance_id``, '' if the fault came first) went to status ERROR."""

    @property
    def fault(self) -> JSONObject | None:
        fault = (self.cluster or {}).get("fault")
        return fault if isinstance(fault, dict) else None


class CofferWaitTimeoutError(CofferWaitError):
    """The wait's deadline passed before the instance (backup, cluster) reached the goal."""


# --------------------------------------------------------------------------- request specs


class WaitUntil(StrEnum):
    """What ``wait_for_instance``, ``wait_for_backup`` and ``wait_for_cluster`` wait for."""

    #: an instance: status ACTIVE and operating_status HEALTHY; a backup: status COMPLETED;
    #: a cluster: task NONE and every member ACTIVE
    READY = "ready"
    #: GET answers 404
    DELETED = "deleted"


@dataclass(frozen=True)
class UserSpec:
    """A database user to create (or whose password to change); ``host`` None means any."""

    name: str
    password: str = field(repr=False)
    host: str | None = None
    databases: tuple[str, ...] = ()

    def to_body(self) -> JSONObject:
        body: JSONObject = {"name": self.name, "password": self.password}
        if self.host is not None:
            body["host"] = self.host
        if self.databases:
            body["databases"] = [{"name": db} for db in self.databases]
        return body


class ClusterMemberSpec(NamedTuple):
    """One member to create in a cluster (or add to it): a flavor id or name, a volume
    size in GB (None: the server's default, which clusters refuse), and a type (Redis:
    ``"master"``, the default, or ``"replica"``; None for Galera). Any
    ``(flavor, volume_size, type)`` tuple does as well."""

    flavor: str
    volume_size: int | None
    type: str | None = None


ClusterMembers = Sequence[tuple[str, int | None, str | None]]


def _member_body(member: tuple[str, int | None, str | None]) -> JSONObject:
    flavor, volume_size, kind = member
    body: JSONObject = {"flavorRef": flavor}
    if volume_size is not None:
        body["volume"] = {"size": volume_size}
    if kind is not None:
        body["type"] = kind
    return body


def _segment(value: str) -> str:
    """``value`` as one URL path segment: every reserved character percent-encoded."""
    encoded = quote(value, safe="")
    if encoded in {".", ".."}:  # dot segments would be collapsed by URL normalisation
        encoded = encoded.replace(".", "%2E")
    return encoded


def user_path_segment(name: str, host: str | None = None) -> str:
    """The ``{user}`` path segment Trove expects: ``name`` or ``name@host``, percent-encoded.

    The server splits on the last ``@``, so a name that itself holds ``@`` is sent with
    Trove's default host ``%`` when no host is given.
    """
    if host is None and "@" in name:
        host = "%"
    return _segment(name if host is None else f"{name}@{host}")


# --------------------------------------------------------------------------- the client


class CofferClient:
    """Client of one Coffer project endpoint. Not thread-safe; close it (or use ``with``)."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._timeout = timeout
        self._http = httpx.Client(
            headers={
                "X-Auth-Token": token,
                "Accept": "application/json",
                "User-Agent": "coffer-client",
            },
            timeout=timeout,
            transport=transport,
        )

    @classmethod
    def from_credentials(
        cls,
        credentials: Credentials,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> CofferClient:
        return cls(
            credentials["endpoint"], credentials["token"], timeout=timeout, transport=transport
        )

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def project_id(self) -> str:
        """The project id: the endpoint's last path segment."""
        return self._endpoint.rsplit("/", 1)[-1]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CofferClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------------- transport

    def request(
        self,
        method: str,
        path: str,
        *,
        body: JSONObject | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request to ``<endpoint><path>``; the decoded JSON reply, or None if empty.

        Raises ``CofferAPIError`` for any HTTP error, ``CofferConnectionError`` when there
        is no answer. Never retries: callers decide what is safe to repeat.
        """
        url = self._endpoint + path
        try:
            response = self._http.request(method, url, json=body, params=params)
        except httpx.TimeoutException as exc:
            raise CofferConnectionError(
                f"no answer from Coffer at {url} within {self._timeout:g}s", url=url
            ) from exc
        except httpx.TransportError as exc:
            raise CofferConnectionError(f"cannot reach Coffer at {url}: {exc}", url=url) from exc
        if response.is_error:
            raise _api_error(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CofferResponseError(
                f"{method} {url} answered {response.status_code} with a body that is not JSON"
            ) from exc

    def _get(self, path: str, key: str) -> Any:
        return _unwrap(self.request("GET", path), key, path)

    def _get_object(self, path: str, key: str) -> JSONObject:
        return _object(self.request("GET", path), key, path)

    def _list(
        self, path: str, key: str, *, params: Mapping[str, str] | None = None
    ) -> list[JSONObject]:
        """Every item of a paginated list, following ``links`` rel=next by its marker."""
        query = dict(params or {})
        items: list[JSONObject] = []
        seen: set[str] = set()
        while True:
            body = self.request("GET", path, params=query)
            page = _unwrap(body, key, path)
            if not isinstance(page, list):
                raise CofferResponseError(f"GET {path}: {key!r} is not a list")
            items.extend(page)
            marker = _next_marker(body)
            if marker is None or marker in seen:
                return items
            seen.add(marker)
            query["marker"] = marker

    # ----------------------------------------------------------------------- events

    def list_events(
        self, *, resource_id: str | None = None, limit: int = 100, all_projects: bool = False
    ) -> list[JSONObject]:
        """The newest ``limit`` events of the project (admin, ``all_projects``: of every
        project), optionally of one resource; newest first."""
        params = {"limit": str(limit)}
        if resource_id:
            params["resource_id"] = resource_id
        path = "/mgmt/events" if all_projects else "/events"
        page = _unwrap(self.request("GET", path, params=params), "events", path)
        if not isinstance(page, list):
            raise CofferResponseError(f"GET {path}: 'events' is not a list")
        return page

    def _find(
        self,
        name_or_id: str,
        get: Callable[[str], JSONObject],
        listing: Callable[[], list[JSONObject]],
        kind: str,
    ) -> JSONObject:
        """The resource whose id, or else whose unique name, is ``name_or_id``: a 404
        ``CofferAPIError`` if none matches, ``CofferAmbiguousNameError`` if several of
        the project's share the name."""
        try:
            return get(name_or_id)
        except CofferAPIError as exc:
            if not exc.not_found:
                raise
        matches = [r for r in listing() if r.get("name") == name_or_id]
        if not matches:
            raise CofferAPIError(
                404, "itemNotFound", f"no {kind} has the id or name {name_or_id!r}"
            )
        if len(matches) > 1:
            ids = [str(r.get("id")) for r in matches]
            raise CofferAmbiguousNameError(name_or_id, ids, kind=kind)
        return get(str(matches[0]["id"]))

    # ----------------------------------------------------------------------- flavors

    def list_flavors(self) -> list[JSONObject]:
        return self._list("/flavors", "flavors")

    def get_flavor(self, flavor_id: str) -> JSONObject:
        return self._get_object(f"/flavors/{_segment(flavor_id)}", "flavor")

    def create_flavor(
        self,
        name: str,
        *,
        ram: int,
        vcpus: int,
        disk: int | None = None,
        flavor_id: str | None = None,
    ) -> JSONObject:
        """Admin: register a flavor (``ram`` in MB, ``disk`` in GB)."""
        flavor: JSONObject = {"name": name, "ram": ram, "vcpus": vcpus}
        if disk is not None:
            flavor["disk"] = disk
        if flavor_id is not None:
            flavor["id"] = flavor_id
        reply = self.request("POST", "/flavors", body={"flavor": flavor})
        return _object(reply, "flavor", "/flavors")

    # ----------------------------------------------------------------------- datastores

    def list_datastores(self) -> list[JSONObject]:
        return self._list("/datastores", "datastores")

    def get_datastore(self, name_or_id: str) -> JSONObject:
        return self._get_object(f"/datastores/{_segment(name_or_id)}", "datastore")

    def list_datastore_versions(self, datastore: str) -> list[JSONObject]:
        return self._list(f"/datastores/{_segment(datastore)}/versions", "versions")

    def get_datastore_version(self, datastore: str, version: str) -> JSONObject:
        path = f"/datastores/{_segment(datastore)}/versions/{_segment(version)}"
        return self._get_object(path, "version")

    # ----------------------------------------------------------------------- instances

    def list_instances(self, *, detail: bool = False) -> list[JSONObject]:
        """This project's instances, newest first; ``detail`` gives the full views."""
        return self._list("/instances/detail" if detail else "/instances", "instances")

    def list_all_instances(self) -> list[JSONObject]:
        """Admin: the instances of every project."""
        return self._list("/mgmt/instances", "instances")

    def get_instance(self, instance_id: str) -> JSONObject:
        return self._get_object(_instance_path(instance_id), "instance")

    def find_instance(self, name_or_id: str) -> JSONObject:
        """The instance whose id, or else whose unique name, is ``name_or_id``.

        Raises ``CofferAPIError`` (404) if none matches, ``CofferAmbiguousNameError`` if
        several instances share the name.
        """
        return self._find(name_or_id, self.get_instance, self.list_instances, "instance")

    def create_instance(
        self,
        name: str,
        *,
        flavor: str,
        datastore: str | None = None,
        datastore_version: str | None = None,
        volume_size: int | None = None,
        databases: Sequence[str] = (),
        users: Sequence[UserSpec] = (),
        backup: str | None = None,
        source_instance: str | None = None,
        restore_time: str | None = None,
        configuration: str | None = None,
    ) -> JSONObject:
        """Ask for a new instance; returns its view (status BUILD). Wait with
        ``wait_for_instance``.

        ``configuration`` (a configuration group id) is attached from the start; the group
        must be for the instance's datastore version.

        ``backup`` (a backup id) restores that backup into the new instance (Trove's
        ``restorePoint``); the datastore then comes from the backup, so leave
        ``datastore`` out or name the backup's. Without ``backup`` and ``datastore`` the
        server's default datastore is used. ``restore_time`` (ISO 8601, UTC unless it
        has an offset) rolls the restore forward to that moment (point-in-time recovery),
        from ``backup`` or from ``source_instance``'s newest backup before it.
        ``configuration`` (a configuration group id) is attached from the start.
        """
        instance: JSONObject = {"name": name, "flavorRef": flavor}
        if volume_size is not None:
            instance["volume"] = {"size": volume_size}
        store: JSONObject = {}
        if datastore is not None:
            store["type"] = datastore
        if datastore_version is not None:
            store["version"] = datastore_version
        if store:
            instance["datastore"] = store
        point: JSONObject = {}
        if backup is not None:
            point["backupRef"] = backup
        if source_instance is not None:
            point["instanceRef"] = source_instance
        if restore_time is not None:
            point["restore_time"] = restore_time
        if point:
            instance["restorePoint"] = point
        if databases:
            instance["databases"] = [{"name": db} for db in databases]
        if users:
            instance["users"] = [user.to_body() for user in users]
        if configuration is not None:
            instance["configuration"] = configuration
        reply = self.request("POST", "/instances", body={"instance": instance})
        return _object(reply, "instance", "/instances")

    def rename_instance(self, instance_id: str, new_name: str) -> None:
        self.request("PUT", _instance_path(instance_id), body={"instance": {"name": new_name}})

    def attach_configuration(self, instance_id: str, configuration_id: str) -> None:
        """Attach a configuration group (the instance must have none); the instance shows
        an operation until its values are applied, so wait for it afterwards."""
        body = {"instance": {"configuration": configuration_id}}
        self.request("PUT", _instance_path(instance_id), body=body)

    def detach_configuration(self, instance_id: str) -> None:
        """Detach the instance's configuration group (Trove's empty update); a no-op
        when none is attached."""
        self.request("PUT", _instance_path(instance_id), body={"instance": {}})

    def delete_instance(self, instance_id: str) -> None:
        """Start deleting; the instance shows SHUTDOWN, then GET answers 404."""
        self.request("DELETE", _instance_path(instance_id))

    def restart_instance(self, instance_id: str) -> None:
        self._action(instance_id, {"restart": {}})

    def resize_instance_flavor(self, instance_id: str, flavor: str) -> None:
        self._action(instance_id, {"resize": {"flavorRef": flavor}})

    def resize_instance_volume(self, instance_id: str, size: int) -> None:
        """Grow the volume to ``size`` GB (it cannot shrink)."""
        self._action(instance_id, {"resize": {"volume": {"size": size}}})

    def reset_instance_status(self, instance_id: str) -> None:
        """Admin: clear the task status of a stuck or failed instance."""
        self._action(instance_id, {"reset_status": {}})

    def create_replica(self, name: str, source: str, *, count: int = 1) -> JSONObject:
        """Ask for ``count`` replicas of instance ``source``; returns the first one's view
        (they take the source's datastore, flavor, volume size and configuration)."""
        body: JSONObject = {"name": name, "replica_of": source}
        if count != 1:
            body["replica_count"] = count
        reply = self.request("POST", "/instances", body={"instance": body})
        return _object(reply, "instance", "/instances")

    def promote_replica(self, instance_id: str) -> None:
        """Planned switchover: the replica becomes its set's source, losing no write."""
        self._action(instance_id, {"promote_to_replica_source": {}})

    def eject_replica_source(self, instance_id: str) -> None:
        """The source is lost: its most advanced replica takes over."""
        self._action(instance_id, {"eject_replica_source": {}})

    def detach_replica(self, instance_id: str) -> None:
        """The replica leaves its set and becomes a standalone, writable instance."""
        self.request("PUT", _instance_path(instance_id), body={"instance": {"replica_of": None}})

    def _action(self, instance_id: str, body: JSONObject) -> None:
        self.request("POST", f"{_instance_path(instance_id)}/action", body=body)

    @overload
    def wait_for_instance(
        self,
        instance_id: str,
        *,
        until: Literal[WaitUntil.READY] = ...,
        timeout: float = ...,
        interval: float = ...,
        on_progress: ProgressCallback | None = ...,
        restart_required_is_ready: bool = ...,
    ) -> JSONObject: ...

    @overload
    def wait_for_instance(
        self,
        instance_id: str,
        *,
        until: Literal[WaitUntil.DELETED],
        timeout: float = ...,
        interval: float = ...,
        on_progress: ProgressCallback | None = ...,
        restart_required_is_ready: bool = ...,
    ) -> None: ...

    def wait_for_instance(
        self,
        instance_id: str,
        *,
        until: WaitUntil = WaitUntil.READY,
        timeout: float = 600.0,
        interval: float = 2.0,
        on_progress: ProgressCallback | None = None,
        restart_required_is_ready: bool = False,
    ) -> JSONObject | None:
        """Poll the instance every ``interval`` seconds until ``until`` holds; may block
        up to ``timeout`` seconds.

        READY returns the final view (status ACTIVE, operating_status HEALTHY); DELETED
        returns None once GET answers 404. Status ERROR raises
        ``CofferInstanceFailedError`` carrying the fault message; the deadline raises
        ``CofferWaitTimeoutError``. An unreachable server is polled again until the
        deadline, so a wait survives a server restart. ``restart_required_is_ready``
        makes READY also end at status RESTART_REQUIRED (a configuration that waits for
        a restart someone must ask for).
        """

        def settled(view: JSONObject) -> bool:
            if view.get("status") == ERROR_STATUS:
                raise _instance_failed(instance_id, view)
            if until is not WaitUntil.READY:
                return False
            pending = restart_required_is_ready and view.get("status") == RESTART_REQUIRED_STATUS
            return pending or _is_ready(view)

        def timed_out(last_view: JSONObject | None, problem: str) -> CofferWaitTimeoutError:
            return CofferWaitTimeoutError(
                f"instance {instance_id} is not {until.value} after {timeout:g}s "
                f"({_describe_status(last_view)}){problem}",
                instance_id=instance_id,
                instance=last_view,
            )

        return _poll(
            lambda: self.get_instance(instance_id),
            settled=settled,
            timed_out=timed_out,
            until=until,
            timeout=timeout,
            interval=interval,
            on_progress=on_progress,
        )

    # ----------------------------------------------------------------------- metrics

    def get_instance_metrics(
        self,
        instance_id: str,
        *,
        minutes: int | None = None,
        since: str | None = None,
        until: str | None = None,
        points: int | None = None,
    ) -> JSONObject:
        """The instance's metrics history (Coffer extension): the ``metrics`` object with
        ``samples`` oldest first (``at``, ``up``, ``connections``, ``rate_per_s``,
        ``cpu_percent``, ``memory_bytes``, ``volume_used_bytes``, ``volume_size_bytes``,
        ``replication_lag_s``) and ``rate_kind``. The window: ``since`` (ISO 8601, UTC
        unless it has an offset) or ``minutes`` back (server default: 60) to ``until``
        (default now); ``points`` caps the number of points (longer series are averaged)."""
        params: dict[str, str] = {}
        for key, value in (
            ("minutes", minutes),
            ("since", since),
            ("until", until),
            ("points", points),
        ):
            if value is not None:
                params[key] = str(value)
        path = f"{_instance_path(instance_id)}/metrics"
        return _object(self.request("GET", path, params=params), "metrics", path)

    # ----------------------------------------------------------------------- backups

    def list_backups(
        self,
        *,
        instance: str | None = None,
        datastore: str | None = None,
        all_projects: bool = False,
    ) -> list[JSONObject]:
        """This project's backups, newest first; filtered by instance id or datastore
        (name or id). ``all_projects`` (admin) lists every project's."""
        params: dict[str, str] = {}
        if instance is not None:
            params["instance_id"] = instance
        if datastore is not None:
            params["datastore"] = datastore
        if all_projects:
            params["all_projects"] = "true"
        return self._list("/backups", "backups", params=params)

    def list_instance_backups(self, instance_id: str) -> list[JSONObject]:
        """The backups of one instance, newest first."""
        return self._list(f"{_instance_path(instance_id)}/backups", "backups")

    def get_backup(self, backup_id: str) -> JSONObject:
        return self._get_object(_backup_path(backup_id), "backup")

    def find_backup(self, name_or_id: str) -> JSONObject:
        """The backup whose id, or else whose unique name, is ``name_or_id``.

        Raises ``CofferAPIError`` (404) if none matches, ``CofferAmbiguousNameError`` if
        several of this project's backups share the name.
        """
        return self._find(name_or_id, self.get_backup, self.list_backups, "backup")

    def create_backup(
        self,
        instance_id: str,
        name: str,
        *,
        description: str | None = None,
        parent_id: str | None = None,
        incremental: bool = False,
    ) -> JSONObject:
        """Start a backup of the instance; returns its view (status NEW). Wait with
        ``wait_for_backup``.

        ``parent_id`` makes an incremental on that backup; ``incremental`` one on the
        instance's latest completed backup (a full one if there is none). Giving both is
        a ``ValueError``.
        """
        if parent_id is not None and incremental:
            raise ValueError(
                "give parent_id (an incremental on that backup) or incremental (one on the "
                "latest backup), not both"
            )
        backup: JSONObject = {"name": name, "instance": instance_id}
        if description is not None:
            backup["description"] = description
        if parent_id is not None:
            backup["parent_id"] = parent_id
        if incremental:
            backup["incremental"] = 1
        reply = self.request("POST", "/backups", body={"backup": backup})
        return _object(reply, "backup", "/backups")

    def delete_backup(self, backup_id: str) -> None:
        """Start deleting the backup and every incremental built on it (those first);
        then GET answers 404."""
        self.request("DELETE", _backup_path(backup_id))

    def verify_backup(self, backup_id: str) -> None:
        """Start restoring the backup into a throwaway instance and checking it again; its
        view's ``verification`` shows the result (Coffer extension)."""
        self.request("POST", f"{_backup_path(backup_id)}/verify")

    # -- backup schedules (Coffer extension) ----------------------------------------------

    def create_backup_schedule(
        self,
        instance_id: str,
        *,
        full: str,
        incremental: str | None = None,
        retention: str = "7d",
        name: str | None = None,
    ) -> JSONObject:
        """Back the instance up on cron schedules (UTC; 5 fields, or 6 with seconds first),
        keeping the backups taken for ``retention`` (e.g. ``"7d"``)."""
        schedule: JSONObject = {"instance_id": instance_id, "full": full, "retention": retention}
        if incremental is not None:
            schedule["incremental"] = incremental
        if name is not None:
            schedule["name"] = name
        reply = self.request("POST", "/backup_schedules", body={"backup_schedule": schedule})
        return _object(reply, "backup_schedule", "/backup_schedules")

    def list_backup_schedules(self, *, instance: str | None = None) -> list[JSONObject]:
        path = "/backup_schedules"
        if instance is not None:
            path += f"?instance_id={_segment(instance)}"
        found = self._get(path, "backup_schedules")
        return [x for x in found if isinstance(x, dict)] if isinstance(found, list) else []

    def delete_backup_schedule(self, schedule_id: str) -> None:
        """Stop the schedule; the backups it took stay."""
        self.request("DELETE", f"/backup_schedules/{_segment(schedule_id)}")

    @overload
    def wait_for_backup(
        self,
        backup_id: str,
        *,
        until: Literal[WaitUntil.READY] = ...,
        timeout: float = ...,
        interval: float = ...,
        on_progress: ProgressCallback | None = ...,
    ) -> JSONObject: ...

    @overload
    def wait_for_backup(
        self,
        backup_id: str,
        *,
        until: Literal[WaitUntil.DELETED],
        timeout: float = ...,
        interval: float = ...,
        on_progress: ProgressCallback | None = ...,
    ) -> None: ...

    def wait_for_backup(
        self,
        backup_id: str,
        *,
        until: WaitUntil = WaitUntil.READY,
        timeout: float = 3600.0,
        interval: float = 2.0,
        on_progress: ProgressCallback | None = None,
    ) -> JSONObject | None:
        """Poll the backup every ``interval`` seconds until ``until`` holds; may block up
        to ``timeout`` seconds. ``on_progress`` sees every view (``progress_bytes``, when
        the server sends it, is what has been streamed so far).

        READY returns the final view (status COMPLETED); status FAILED raises
        ``CofferBackupFailedError`` carrying the backup's ``fail_reason``. DELETED
        returns None once GET answers 404; status DELETE_FAILED raises
        ``CofferBackupFailedError``, except that a backup already DELETE_FAILED at the
        first poll (a retried delete) fails the wait only when the server records a new
        failure (its ``updated`` changes). The deadline raises
        ``CofferWaitTimeoutError``. An unreachable server is polled again until the
        deadline, so a wait survives a server restart.
        """
        first_view: JSONObject | None = None

        def settled(view: JSONObject) -> bool:
            nonlocal first_view
            if first_view is None:
                first_view = view
            status = view.get("status")
            if until is WaitUntil.READY:
                if status == BACKUP_COMPLETED:
                    return True
                if status in (BACKUP_FAILED, BACKUP_DELETE_FAILED):
                    raise _backup_failed(backup_id, view)
                return False
            if status == BACKUP_DELETE_FAILED and not _same_failure(first_view, view):
                raise _backup_failed(backup_id, view)
            return False

        def timed_out(last_view: JSONObject | None, problem: str) -> CofferWaitTimeoutError:
            goal = "COMPLETED" if until is WaitUntil.READY else "deleted"
            seen = "never seen" if last_view is None else f"status {last_view.get('status')}"
            return CofferWaitTimeoutError(
                f"backup {backup_id} is not {goal} after {timeout:g}s ({seen}){problem}",
                instance_id=str((last_view or {}).get("instance_id") or ""),
                instance=None,
                backup_id=backup_id,
                backup=last_view,
            )

        return _poll(
            lambda: self.get_backup(backup_id),
            settled=settled,
            timed_out=timed_out,
            until=until,
            timeout=timeout,
            interval=interval,
            on_progress=on_progress,
        )

    # ----------------------------------------------------------------------- clusters

    def list_clusters(self) -> list[JSONObject]:
        """This project's clusters, each with its members (id, name, type, status, ...)."""
        return self._list("/clusters", "clusters")

    def get_cluster(self, cluster_id: str) -> JSONObject:
        return self._get_object(_cluster_path(cluster_id), "cluster")

    def find_cluster(self, name_or_id: str) -> JSONObject:
        """The cluster whose id, or else whose unique name, is ``name_or_id``.

        Raises ``CofferAPIError`` (404) if none matches, ``CofferAmbiguousNameError`` if
        several of this project's clusters share the name.
        """
        return self._find(name_or_id, self.get_cluster, self.list_clusters, "cluster")

    def create_cluster(
        self, name: str, datastore: str, version: str, members: ClusterMembers
    ) -> JSONObject:
        """Ask for a new cluster of ``members`` (``ClusterMemberSpec`` or plain
        ``(flavor, volume_size, type)`` tuples); returns its view (task BUILDING). Wait
        with ``wait_for_cluster``.

        ``datastore`` is ``mariadb`` (a Galera cluster, 3+ members, no type) or ``redis``
        (a Redis Cluster, 3+ masters; members of type ``"replica"`` follow them). Every
        member needs the same flavor and volume size. The server checks all of this and
        answers 400 (nothing created) when a rule is broken.
        """
        cluster: JSONObject = {
            "name": name,
            "datastore": {"type": datastore, "version": version},
            "instances": [_member_body(m) for m in members],
        }
        reply = self.request("POST", "/clusters", body={"cluster": cluster})
        return _object(reply, "cluster", "/clusters")

    def grow_cluster(self, cluster_id: str, members: ClusterMembers) -> JSONObject:
        """Add members (the cluster's own flavor and volume size); returns the cluster's
        view (task GROWING_CLUSTER)."""
        return self._cluster_action(cluster_id, {"grow": [_member_body(m) for m in members]})

    def shrink_cluster(self, cluster_id: str, instance_ids: Sequence[str]) -> JSONObject:
        """Remove the members with these instance ids; returns the cluster's view (task
        SHRINKING_CLUSTER). The server refuses (400) to go below 3 members (Galera) or 3
        masters (Redis), or to remove a Redis master without its replicas."""
        body = {"shrink": [{"id": instance_id} for instance_id in instance_ids]}
        return self._cluster_action(cluster_id, body)

    def restart_cluster(self, cluster_id: str) -> JSONObject:
        """Restart every member in turn (a Galera cluster that is down is recovered);
        returns the cluster's view (task RESTARTING_CLUSTER)."""
        return self._cluster_action(cluster_id, {"restart": {}})

    def delete_cluster(self, cluster_id: str) -> None:
        """Start deleting the cluster and every member; then GET answers 404."""
        self.request("DELETE", _cluster_path(cluster_id))

    def _cluster_action(self, cluster_id: str, body: JSONObject) -> JSONObject:
        path = _cluster_path(cluster_id)
        return _object(self.request("POST", path, body=body), "cluster", path)

    @overload
    def wait_for_cluster(
        self,
        cluster_id: str,
        *,
        until: Literal[WaitUntil.READY] = ...,
        timeout: float = ...,
        interval: float = ...,
        on_progress: ProgressCallback | None = ...,
    ) -> JSONObject: ...

    @overload
    def wait_for_cluster(
        self,
        cluster_id: str,
        *,
        until: Literal[WaitUntil.DELETED],
        timeout: float = ...,
        interval: float = ...,
        on_progress: ProgressCallback | None = ...,
    ) -> None: ...

    def wait_for_cluster(
        self,
        cluster_id: str,
        *,
        until: WaitUntil = WaitUntil.READY,
        timeout: float = 1200.0,
        interval: float = 2.0,
        on_progress: ProgressCallback | None = None,
    ) -> JSONObject | None:
        """Poll the cluster every ``interval`` seconds until ``until`` holds; may block up
        to ``timeout`` seconds.

        READY returns the final view: task NONE and every member (at least one) ACTIVE.
        A ``fault`` on the cluster, or a member with status ERROR, raises
        ``CofferClusterFailedError`` with the fault's message (or the failed member's).
        DELETED returns None once GET answers 404; a fault with the task back to NONE (the
        delete failed) raises ``CofferClusterFailedError``. The deadline raises
        ``CofferWaitTimeoutError``. An unreachable server is polled again until the
        deadline, so a wait survives a server restart.
        """

        def settled(view: JSONObject) -> bool:
            idle = _cluster_task(view) == CLUSTER_IDLE_TASK
            if until is WaitUntil.DELETED:
                if idle and isinstance(view.get("fault"), dict):
                    raise self._cluster_failed(cluster_id, view)
                return False
            if isinstance(view.get("fault"), dict) or _failed_members(view):
                raise self._cluster_failed(cluster_id, view)
            members = _members(view)
            return idle and bool(members) and all(m.get("status") == READY_STATUS for m in members)

        def timed_out(last_view: JSONObject | None, problem: str) -> CofferWaitTimeoutError:
            return CofferWaitTimeoutError(
                f"cluster {cluster_id} is not {until.value} after {timeout:g}s "
                f"({_describe_cluster(last_view)}){problem}",
                instance_id="",
                instance=None,
                cluster_id=cluster_id,
                cluster=last_view,
            )

        return _poll(
            lambda: self.get_cluster(cluster_id),
            settled=settled,
            timed_out=timed_out,
            until=until,
            timeout=timeout,
            interval=interval,
            on_progress=on_progress,
        )

    def _cluster_failed(self, cluster_id: str, view: JSONObject) -> CofferClusterFailedError:
        """The error for a failed cluster: its fault's message, else the first ERROR
        member's own fault (read from the member's instance view, if it can be)."""
        name = view.get("name") or cluster_id
        fault = view.get("fault")
        failed = _failed_members(view)
        member = failed[0] if failed else None
        member_id = str(member.get("id")) if member else ""
        if isinstance(fault, dict) and fault.get("message"):
            message = f"cluster {name} ({cluster_id}) failed: {_one_line(str(fault['message']))}"
        else:
            message = f"member {member_id} of cluster {name} ({cluster_id}) went to ERROR"
            reason = self._member_fault(cluster_id, member_id) if member_id else None
            message += f": {reason}" if reason else " (no fault recorded)"
        return CofferClusterFailedError(
            message,
            instance_id=member_id,
            instance=member,
            cluster_id=cluster_id,
            cluster=view,
        )

    def _member_fault(self, cluster_id: str, instance_id: str) -> str | None:
        path = f"{_cluster_path(cluster_id)}/instances/{_segment(instance_id)}"
        try:
            fault = self._get_object(path, "instance").get("fault")
        except CofferClientError:
            return None  # the member's own view is only a better message
        message = fault.get("message") if isinstance(fault, dict) else None
        return _one_line(str(message)) if message else None

    # ----------------------------------------------------------------------- configuration groups

    def list_configurations(self) -> list[JSONObject]:
        """This project's configuration groups, oldest first (without their values)."""
        return self._list("/configurations", "configurations")

    def get_configuration(self, config_id: str) -> JSONObject:
        """One group with its ``values`` (secret-looking keys shown as ``***``) and
        ``instance_count``."""
        return self._get_object(_configuration_path(config_id), "configuration")

    def find_configuration(self, name_or_id: str) -> JSONObject:
        """The group whose id, or else whose unique name, is ``name_or_id`` (full view).

        Raises ``CofferAPIError`` (404) if none matches, ``CofferAmbiguousNameError`` if
        several of this project's groups share the name.
        """
        return self._find(
            name_or_id, self.get_configuration, self.list_configurations, "configuration group"
        )

    def create_configuration(
        self,
        name: str,
        values: Mapping[str, Any],
        *,
        datastore: str | None = None,
        datastore_version: str | None = None,
        description: str | None = None,
    ) -> JSONObject:
        """A new group of parameter ``values`` for one datastore version (the server's
        default datastore and version when left out); returns its full view. The server
        checks every value against the engine's rules and answers 422 (nothing created)
        for a bad one."""
        configuration: JSONObject = {"name": name, "values": dict(values)}
        if description is not None:
            configuration["description"] = description
        store: JSONObject = {}
        if datastore is not None:
            store["type"] = datastore
        if datastore_version is not None:
            store["version"] = datastore_version
        if store:
            configuration["datastore"] = store
        reply = self.request("POST", "/configurations", body={"configuration": configuration})
        return _object(reply, "configuration", "/configurations")

    def update_configuration(
        self,
        config_id: str,
        *,
        values: Mapping[str, Any] | None = None,
        name: str | None = None,
        description: str | None = None,
        merge: bool = False,
    ) -> None:
        """Change a group: ``values`` replace all of its values (PUT), or with ``merge``
        are added to them (PATCH). The new values are applied to every attached instance,
        so the server refuses (422, nothing changed) while one of them is busy."""
        changes: JSONObject = {}
        if values is not None:
            changes["values"] = dict(values)
        if name is not None:
            changes["name"] = name
        if description is not None:
            changes["description"] = description
        if not changes:
            raise ValueError("update_configuration needs values, name or description")
        method = "PATCH" if merge else "PUT"
        self.request(method, _configuration_path(config_id), body={"configuration": changes})

    def delete_configuration(self, config_id: str) -> None:
        """Delete a group; the server refuses (400) while instances have it attached."""
        self.request("DELETE", _configuration_path(config_id))

    def list_configuration_instances(self, config_id: str) -> list[JSONObject]:
        """``[{id, name}]`` of the instances the group is attached to."""
        return self._list(f"{_configuration_path(config_id)}/instances", "instances")

    # ----------------------------------------------------------------------- databases

    def list_databases(self, instance_id: str) -> list[JSONObject]:
        return self._list(f"{_instance_path(instance_id)}/databases", "databases")

    def create_databases(
        self,
        instance_id: str,
        names: Sequence[str],
        *,
        character_set: str | None = None,
        collate: str | None = None,
    ) -> None:
        databases: list[JSONObject] = []
        for name in names:
            database: JSONObject = {"name": name}
            if character_set is not None:
                database["character_set"] = character_set
            if collate is not None:
                database["collate"] = collate
            databases.append(database)
        path = f"{_instance_path(instance_id)}/databases"
        self.request("POST", path, body={"databases": databases})

    def delete_database(self, instance_id: str, name: str) -> None:
        self.request("DELETE", f"{_instance_path(instance_id)}/databases/{_segment(name)}")

    # ----------------------------------------------------------------------- users

    def list_users(self, instance_id: str) -> list[JSONObject]:
        return self._list(f"{_instance_path(instance_id)}/users", "users")

    def create_users(self, instance_id: str, users: Sequence[UserSpec]) -> None:
        body = {"users": [user.to_body() for user in users]}
        self.request("POST", f"{_instance_path(instance_id)}/users", body=body)

    def change_user_passwords(self, instance_id: str, users: Sequence[UserSpec]) -> None:
        """Set new passwords for several users at once (their ``databases`` are ignored)."""
        body = {"users": [UserSpec(u.name, u.password, u.host).to_body() for u in users]}
        self.request("PUT", f"{_instance_path(instance_id)}/users", body=body)

    def get_user(self, instance_id: str, name: str, *, host: str | None = None) -> JSONObject:
        return self._get_object(_user_path(instance_id, name, host), "user")

    def update_user(
        self,
        instance_id: str,
        name: str,
        *,
        host: str | None = None,
        new_name: str | None = None,
        new_password: str | None = None,
        new_host: str | None = None,
    ) -> None:
        """Rename a user, change its password or its host; at least one change is needed."""
        changes: JSONObject = {}
        if new_name is not None:
            changes["name"] = new_name
        if new_password is not None:
            changes["password"] = new_password
        if new_host is not None:
            changes["host"] = new_host
        if not changes:
            raise ValueError("update_user needs new_name, new_password or new_host")
        self.request("PUT", _user_path(instance_id, name, host), body={"user": changes})

    def delete_user(self, instance_id: str, name: str, *, host: str | None = None) -> None:
        self.request("DELETE", _user_path(instance_id, name, host))

    def list_user_access(
        self, instance_id: str, name: str, *, host: str | None = None
    ) -> list[JSONObject]:
        """The databases the user may use."""
        return self._list(f"{_user_path(instance_id, name, host)}/databases", "databases")

    def grant_user_access(
        self, instance_id: str, name: str, databases: Sequence[str], *, host: str | None = None
    ) -> None:
        body = {"databases": [{"name": db} for db in databases]}
        self.request("PUT", f"{_user_path(instance_id, name, host)}/databases", body=body)

    def revoke_user_access(
        self, instance_id: str, name: str, database: str, *, host: str | None = None
    ) -> None:
        path = f"{_user_path(instance_id, name, host)}/databases/{_segment(database)}"
        self.request("DELETE", path)

    # ----------------------------------------------------------------------- root

    def enable_root(self, instance_id: str, *, password: str | None = None) -> JSONObject:
        """Enable the superuser; returns ``{"name", "password"}`` (the only time it is
        shown)."""
        body = None if password is None else {"password": password}
        reply = self.request("POST", f"{_instance_path(instance_id)}/root", body=body)
        return _object(reply, "user", "root")

    def is_root_enabled(self, instance_id: str) -> bool:
        return bool(self._get(f"{_instance_path(instance_id)}/root", "rootEnabled"))

    def disable_root(self, instance_id: str) -> None:
        self.request("DELETE", f"{_instance_path(instance_id)}/root")

    # ----------------------------------------------------------------------- instance logs

    def list_logs(self, instance_id: str) -> list[JSONObject]:
        """Trove's GuestLog objects of every log the instance's datastore exposes."""
        path = f"{_instance_path(instance_id)}/log"
        logs = self._get(path, "logs")
        if not isinstance(logs, list):
            raise CofferResponseError(f"GET {path}: 'logs' is not a list")
        return logs

    def show_log(self, instance_id: str, name: str) -> JSONObject:
        return self._log(instance_id, name, None)

    def enable_log(self, instance_id: str, name: str) -> JSONObject:
        """Switch a USER log on (live, and kept across restarts); returns it."""
        return self._log(instance_id, name, "enable")

    def disable_log(self, instance_id: str, name: str) -> JSONObject:
        return self._log(instance_id, name, "disable")

    def publish_log(self, instance_id: str, name: str) -> JSONObject:
        """Copy what the log gained since its last publish to the instance's backup
        store; returns the log (``published``, ``pending``, ``container``, ``prefix``)."""
        return self._log(instance_id, name, "publish")

    def discard_log(self, instance_id: str, name: str) -> JSONObject:
        """Remove what was published of the log."""
        return self._log(instance_id, name, "discard")

    def _log(self, instance_id: str, name: str, action: str | None) -> JSONObject:
        body: JSONObject = {"name": name}
        if action is not None:
            body[action] = 1
        reply = self.request("POST", f"{_instance_path(instance_id)}/log", body=body)
        return _object(reply, "log", "log")

    # ----------------------------------------------------------------------- limits, quotas

    def get_limits(self) -> list[JSONObject]:
        """Trove's limits list: first the ABSOLUTE entry (``max_<resource>``), then rates."""
        limits = self._get("/limits", "limits")
        if not isinstance(limits, list):
            raise CofferResponseError("GET /limits: 'limits' is not a list")
        return limits

    def get_quotas(self, project_id: str | None = None) -> list[JSONObject]:
        """``[{resource, in_use, reserved, limit}]`` of a project (default: this one)."""
        path = f"/mgmt/quotas/{_segment(project_id or self.project_id)}"
        quotas = self._get(path, "quotas")
        if not isinstance(quotas, list):
            raise CofferResponseError(f"GET {path}: 'quotas' is not a list")
        return quotas

    def update_quotas(
        self,
        project_id: str,
        *,
        instances: int | None = None,
        ram: int | None = None,
        volumes: int | None = None,
        backups: int | None = None,
    ) -> JSONObject:
        """Admin: set some of a project's limits (-1 means unlimited); returns the new
        ones."""
        wanted = {"instances": instances, "ram": ram, "volumes": volumes, "backups": backups}
        quotas = {resource: value for resource, value in wanted.items() if value is not None}
        if not quotas:
            raise ValueError("update_quotas needs at least one limit")
        path = f"/mgmt/quotas/{_segment(project_id)}"
        return _object(self.request("PUT", path, body={"quotas": quotas}), "quotas", path)

    # ----------------------------------------------------------------------- projects, tokens

    def create_project(self, name: str) -> CreatedProject:
        """Admin (Coffer extension): a new project and a first token for it."""
        reply = self.request("POST", "/mgmt/projects", body={"project": {"name": name}})
        project = _object(reply, "project", "/mgmt/projects")
        credentials = _credentials(_unwrap(reply, "credentials", "/mgmt/projects"))
        return {"project": project, "credentials": credentials}

    def list_projects(self) -> list[JSONObject]:
        """Admin (Coffer extension)."""
        return self._list("/mgmt/projects", "projects")

    def create_token(self, project: str) -> Credentials:
        """Admin (Coffer extension): a new token for the project with this name or id."""
        reply = self.request("POST", "/mgmt/tokens", body={"token": {"project": project}})
        return _credentials(_unwrap(reply, "credentials", "/mgmt/tokens"))


# --------------------------------------------------------------------------- helpers


def _instance_path(instance_id: str) -> str:
    return f"/instances/{_segment(instance_id)}"


def _backup_path(backup_id: str) -> str:
    return f"/backups/{_segment(backup_id)}"


def _configuration_path(config_id: str) -> str:
    return f"/configurations/{_segment(config_id)}"


def _cluster_path(cluster_id: str) -> str:
    return f"/clusters/{_segment(cluster_id)}"


def _user_path(instance_id: str, name: str, host: str | None) -> str:
    return f"{_instance_path(instance_id)}/users/{user_path_segment(name, host)}"


def _unwrap(body: Any, key: str, where: str) -> Any:
    if not isinstance(body, dict) or key not in body:
        raise CofferResponseError(f"the reply to {where} has no {key!r}")
    return body[key]


def _object(body: Any, key: str, where: str) -> JSONObject:
    value = _unwrap(body, key, where)
    if not isinstance(value, dict):
        raise CofferResponseError(f"the reply to {where} has {key!r} that is not an object")
    return value


def _credentials(value: Any) -> Credentials:
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), str) for k in ("endpoint", "project_id", "token")
    ):
        raise CofferResponseError("the server's credentials lack endpoint, project_id or token")
    return {
        "endpoint": value["endpoint"],
        "project_id": value["project_id"],
        "token": value["token"],
    }


def _next_marker(body: Any) -> str | None:
    """The ``marker`` of Trove's ``links: [{rel: next, href}]``, if there is a next page."""
    links = body.get("links") if isinstance(body, dict) else None
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("rel") == "next":
            markers = parse_qs(urlsplit(str(link.get("href", ""))).query).get("marker")
            if markers:
                return markers[0]
    return None


def _api_error(response: httpx.Response) -> CofferAPIError:
    """Read Trove's ``{"<fault>": {"code", "message"}}``; tolerate other error bodies."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and len(body) == 1:
        fault, detail = next(iter(body.items()))
        if isinstance(detail, dict) and "message" in detail:
            return CofferAPIError(status, str(fault), _one_line(str(detail["message"])))
        if fault == "detail":  # a framework's own error, e.g. FastAPI validation
            return CofferAPIError(status, "", _one_line(_describe_detail(detail)))
    text = _one_line(response.text)[:200] or response.reason_phrase
    return CofferAPIError(status, "", text or f"HTTP error {status}")


def _describe_detail(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", ()))
                parts.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _is_ready(view: JSONObject) -> bool:
    return (
        view.get("status") == READY_STATUS
        and view.get("operating_status") == READY_OPERATING_STATUS
    )


def _poll(
    fetch: Callable[[], JSONObject],
    *,
    settled: Callable[[JSONObject], bool],
    timed_out: Callable[[JSONObject | None, str], CofferWaitTimeoutError],
    until: WaitUntil,
    timeout: float,
    interval: float,
    on_progress: ProgressCallback | None,
) -> JSONObject | None:
    """Call ``fetch`` every ``interval`` seconds until the wait ends; may block up to
    ``timeout`` seconds.

    Each view fetched goes to ``on_progress`` (with the seconds since the start), then to
    ``settled``, which returns True when the view is the goal (it is returned), False to
    keep polling, or raises to fail the wait. A 404 ends a DELETED wait with None; any
    other ``CofferAPIError`` propagates. A ``CofferConnectionError`` is polled through.
    At the deadline the error ``timed_out(last view or None, "; last error: ..." or "")``
    builds is raised.
    """
    start = time.monotonic()
    deadline = start + timeout
    last_view: JSONObject | None = None
    while True:
        problem = ""
        try:
            view = fetch()
        except CofferAPIError as exc:
            if exc.not_found and until is WaitUntil.DELETED:
                return None
            raise
        except CofferConnectionError as exc:
            problem = f"; last error: {exc}"
        else:
            last_view = view
            if on_progress is not None:
                on_progress(view, time.monotonic() - start)
            if settled(view):
                return view
        now = time.monotonic()
        if now >= deadline:
            raise timed_out(last_view, problem)
        time.sleep(max(0.0, min(interval, deadline - now)))


def _same_failure(first_view: JSONObject, view: JSONObject) -> bool:
    """Whether ``view`` shows the DELETE_FAILED the wait found at its first view (a retried
    delete), not a new failure: the server records each failure with a new ``updated``."""
    failed_first = first_view.get("status") == BACKUP_DELETE_FAILED
    earlier = first_view.get("updated") if failed_first else None
    return view.get("updated") == earlier


def _describe_status(view: JSONObject | None) -> str:
    if view is None:
        return "never seen"
    return f"status {view.get('status')}, operating status {view.get('operating_status') or '-'}"


def _members(view: JSONObject) -> list[JSONObject]:
    """A cluster view's member entries (Trove's ``instances``)."""
    members = view.get("instances")
    return [m for m in members if isinstance(m, dict)] if isinstance(members, list) else []


def _failed_members(view: JSONObject) -> list[JSONObject]:
    return [m for m in _members(view) if m.get("status") == ERROR_STATUS]


def _cluster_task(view: JSONObject) -> str | None:
    task = view.get("task")
    name = task.get("name") if isinstance(task, dict) else None
    return str(name) if name is not None else None


def _describe_cluster(view: JSONObject | None) -> str:
    """``task GROWING_CLUSTER, members: 3 ACTIVE, 1 BUILD`` (or ``never seen``)."""
    if view is None:
        return "never seen"
    counts: dict[str, int] = {}
    for member in _members(view):
        status = str(member.get("status") or "-")
        counts[status] = counts.get(status, 0) + 1
    members = ", ".join(f"{n} {status}" for status, n in counts.items()) or "none"
    return f"task {_cluster_task(view) or '-'}, members: {members}"


def _instance_failed(instance_id: str, view: JSONObject) -> CofferInstanceFailedError:
    fault = view.get("fault")
    reason = fault.get("message") if isinstance(fault, dict) else None
    name = view.get("name") or instance_id
    message = f"instance {name} ({instance_id}) went to ERROR"
    message += f": {_one_line(str(reason))}" if reason else " (no fault recorded)"
    return CofferInstanceFailedError(message, instance_id=instance_id, instance=view)


def _backup_failed(backup_id: str, view: JSONObject) -> CofferBackupFailedError:
    reason = view.get("fail_reason")
    name = view.get("name") or backup_id
    message = f"backup {name} ({backup_id}) went to {view.get('status')}"
    message += f": {_one_line(str(reason))}" if reason else " (no reason recorded)"
    return CofferBackupFailedError(
        message,
        instance_id=str(view.get("instance_id") or ""),
        instance=None,
        backup_id=backup_id,
        backup=view,
    )
