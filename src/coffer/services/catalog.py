"""Flavors, datastores and datastore versions: lookups and the seeded defaults."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from coffer import engines
from coffer.db.models import Datastore, DatastoreVersion, Flavor, Instance
from coffer.errors import BadRequest, NotFound
from coffer.services.runtime import Runtime

#: name, id, RAM MB, vCPUs — small enough for many instances on one host.
DEFAULT_FLAVORS = (
    ("tiny", "1", 256, 1),
    ("small", "2", 512, 1),
    ("medium", "3", 1024, 2),
    ("large", "4", 2048, 2),
    ("xlarge", "5", 4096, 4),
)

_NS = uuid.UUID("6f1c1b1e-9a39-4c59-9a5e-2b8a6d1c0f00")


def stable_id(*parts: str) -> str:
    """Deterministic UUIDs for seeded rows, equal on every deployment."""
    return str(uuid.uuid5(_NS, "/".join(parts)))


def seed(s: Session) -> None:
    """Insert default flavors and every registered engine's datastore (idempotent)."""
    for name, fid, ram, vcpus in DEFAULT_FLAVORS:
        if (
            s.get(Flavor, fid) is None
            and s.scalar(select(Flavor).where(Flavor.name == name)) is None
        ):
            s.add(Flavor(id=fid, name=name, ram_mb=ram, vcpus=vcpus, disk_gb=0))
    for engine_name in engines.known_engines():
        cat = engines.catalog(engine_name)
        ds_id = stable_id("datastore", engine_name)
        ds = s.get(Datastore, ds_id)
        if ds is None:
            ds = Datastore(id=ds_id, name=engine_name)
            s.add(ds)
        # Only the default version is registered; admins add others (mgmt/datastore-versions).
        version = cat.default_version
        v_id = stable_id("datastore-version", engine_name, version)
        if s.get(DatastoreVersion, v_id) is None:
            s.add(
                DatastoreVersion(
                    id=v_id,
                    datastore_id=ds_id,
                    name=version,
                    version=version,
                    manager=engine_name,
                    active=True,
                )
            )
        if ds.default_version_id is None:
            ds.default_version_id = v_id


def flavor_ref(ref: str | int) -> str:
    """Trove accepts an id, a name or an href ending in the id."""
    text = str(ref).strip()
    return text.rstrip("/").rsplit("/", 1)[-1] if "/" in text else text


def find_flavor(s: Session, ref: str | int) -> Flavor | None:
    key = flavor_ref(ref)
    return s.scalar(select(Flavor).where(or_(Flavor.id == key, Flavor.name == key)))


def get_flavor(rt: Runtime, ref: str) -> Flavor:
    with rt.sessions() as s:
        flavor = find_flavor(s, ref)
        if flavor is None:
            raise NotFound(f"Flavor {ref} could not be found")
        return flavor


def list_flavors(rt: Runtime) -> list[Flavor]:
    with rt.sessions() as s:
        return list(s.scalars(select(Flavor).order_by(Flavor.ram_mb, Flavor.name)))


_FLAVOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class FlavorRequest:
    name: str
    ram_mb: int
    vcpus: int
    disk_gb: int = 0
    id: str | None = None


def create_flavor(rt: Runtime, req: FlavorRequest) -> Flavor:
    if not _FLAVOR_NAME.match(req.name):
        raise BadRequest("flavor name must be 1-64 letters, digits, '.', '_' or '-'")
    if req.ram_mb < 64 or req.vcpus < 1 or req.disk_gb < 0:
        raise BadRequest("a flavor needs ram >= 64 (MB), vcpus >= 1 and disk >= 0")
    with rt.sessions.begin() as s:
        fid = req.id or str(
            1 + max((int(f.id) for f in s.scalars(select(Flavor)) if f.id.isdigit()), default=0)
        )
        if s.get(Flavor, fid) is not None or s.scalar(
            select(Flavor).where(Flavor.name == req.name)
        ):
            raise BadRequest(f"a flavor with id {fid} or name {req.name!r} already exists")
        flavor = Flavor(
            id=fid, name=req.name, ram_mb=req.ram_mb, vcpus=req.vcpus, disk_gb=req.disk_gb
        )
        s.add(flavor)
        return flavor


@dataclass(frozen=True)
class VersionRef:
    datastore: Datastore
    version: DatastoreVersion


def find_datastore(s: Session, ref: str) -> Datastore | None:
    return s.scalar(select(Datastore).where(or_(Datastore.id == ref, Datastore.name == ref)))


def datastore_versions(
    s: Session, ds: Datastore, *, include_inactive: bool
) -> list[DatastoreVersion]:
    q = select(DatastoreVersion).where(DatastoreVersion.datastore_id == ds.id)
    if not include_inactive:
        q = q.where(DatastoreVersion.active)
    return list(s.scalars(q.order_by(DatastoreVersion.name)))


def find_version(s: Session, ds: Datastore, ref: str) -> DatastoreVersion | None:
    return s.scalar(
        select(DatastoreVersion).where(
            DatastoreVersion.datastore_id == ds.id,
            or_(DatastoreVersion.id == ref, DatastoreVersion.name == ref),
        )
    )


def resolve_version(s: Session, ds_ref: str | None, version_ref: str | None) -> VersionRef:
    """Datastore and version for an instance request (defaults as Trove: first datastore)."""
    if ds_ref:
        ds = find_datastore(s, ds_ref)
        if ds is None:
            raise BadRequest(f"Datastore '{ds_ref}' cannot be found.")
    else:
        ds = s.scalar(select(Datastore).order_by(Datastore.name).limit(1))
        if ds is None:
            raise BadRequest("no datastore is registered")
    if version_ref:
        version = find_version(s, ds, version_ref)
        if version is None:
            raise BadRequest(f"Datastore version '{version_ref}' cannot be found.")
    else:
        if ds.default_version_id is None:
            raise BadRequest(f"Default version for datastore '{ds.name}' not found.")
        version = s.get(DatastoreVersion, ds.default_version_id)
        assert version is not None
    if not version.active:
        raise BadRequest(f"Datastore version '{version.name}' is not active.")
    return VersionRef(ds, version)


@dataclass(frozen=True)
class DatastoreListing:
    datastore: Datastore
    versions: list[DatastoreVersion]


def list_datastores(rt: Runtime, *, include_inactive: bool) -> list[DatastoreListing]:
    with rt.sessions() as s:
        return [
            DatastoreListing(ds, datastore_versions(s, ds, include_inactive=include_inactive))
            for ds in s.scalars(select(Datastore).order_by(Datastore.name))
        ]


def get_datastore(rt: Runtime, ref: str, *, include_inactive: bool) -> DatastoreListing:
    with rt.sessions() as s:
        ds = find_datastore(s, ref)
        if ds is None:
            raise NotFound(f"Datastore '{ref}' cannot be found.")
        return DatastoreListing(ds, datastore_versions(s, ds, include_inactive=include_inactive))


def get_version(rt: Runtime, datastore_ref: str | None, version_ref: str) -> DatastoreVersion:
    """A version by id, or by name within ``datastore_ref``."""
    with rt.sessions() as s:
        if datastore_ref is None:
            found = s.get(DatastoreVersion, version_ref)
        else:
            ds = find_datastore(s, datastore_ref)
            if ds is None:
                raise NotFound(f"Datastore '{datastore_ref}' cannot be found.")
            found = find_version(s, ds, version_ref)
        if found is None:
            raise NotFound(f"Datastore version '{version_ref}' cannot be found.")
        return found


def register_version(
    rt: Runtime,
    *,
    datastore_name: str,
    name: str,
    manager: str,
    version: str | None,
    active: bool,
    default: bool,
) -> DatastoreVersion:
    """Admin: add a version of an installed engine (the datastore is created if needed)."""
    if manager not in engines.known_engines():
        raise BadRequest(
            f"datastore_manager {manager!r} is not an engine Coffer knows "
            f"(known: {', '.join(engines.known_engines())})"
        )
    engine_version = version or name
    cat = engines.catalog(manager)
    if engine_version not in cat.versions:
        raise BadRequest(
            f"{manager} has no version {engine_version!r}; supported: {', '.join(cat.versions)}"
        )
    with rt.sessions.begin() as s:
        ds = find_datastore(s, datastore_name)
        if ds is None:
            ds = Datastore(id=str(uuid.uuid4()), name=datastore_name)
            s.add(ds)
            s.flush()
        if find_version(s, ds, name) is not None:
            raise BadRequest(f"datastore {datastore_name} already has a version named {name!r}")
        v = DatastoreVersion(
            id=str(uuid.uuid4()),
            datastore_id=ds.id,
            name=name,
            version=engine_version,
            manager=manager,
            active=active,
        )
        s.add(v)
        if default or ds.default_version_id is None:
            ds.default_version_id = v.id
        return v


def list_all_versions(rt: Runtime) -> list[DatastoreVersion]:
    with rt.sessions() as s:
        return list(s.scalars(select(DatastoreVersion).order_by(DatastoreVersion.name)))


def update_version(rt: Runtime, version_id: str, changes: dict[str, object]) -> None:
    with rt.sessions.begin() as s:
        v = s.get(DatastoreVersion, version_id)
        if v is None:
            raise NotFound(f"Datastore version '{version_id}' cannot be found.")
        if "datastore_manager" in changes and changes["datastore_manager"] != v.manager:
            raise BadRequest("the engine of an existing datastore version cannot be changed")
        if "name" in changes:
            ds = s.get(Datastore, v.datastore_id)
            assert ds is not None
            other = find_version(s, ds, str(changes["name"]))
            if other is not None and other.id != v.id:
                raise BadRequest(
                    f"datastore {ds.name} already has a version named {changes['name']!r}"
                )
            v.name = str(changes["name"])
        if "active" in changes:
            v.active = bool(changes["active"])
        if changes.get("default"):
            ds = s.get(Datastore, v.datastore_id)
            assert ds is not None
            ds.default_version_id = v.id


def delete_version(rt: Runtime, version_id: str) -> None:
    """Admin: remove a version no live instance uses (records of deleted ones go with it)."""
    with rt.sessions.begin() as s:
        v = s.get(DatastoreVersion, version_id)
        if v is None:
            raise NotFound(f"Datastore version '{version_id}' cannot be found.")
        used = s.scalar(
            select(func.count())
            .select_from(Instance)
            .where(Instance.datastore_version_id == version_id, Instance.deleted.is_(False))
        )
        if used:
            raise BadRequest(f"datastore version {v.name} is used by {used} instance(s)")
        s.execute(
            delete(Instance).where(Instance.datastore_version_id == version_id, Instance.deleted)
        )
        ds = s.get(Datastore, v.datastore_id)
        if ds is not None and ds.default_version_id == v.id:
            ds.default_version_id = None
        s.delete(v)
