"""Configuration groups: parameter catalogues, groups, and attaching them to instances.

Values are validated against the engine's parameter rules before anything is written.
Changing a group re-applies it to every attached instance: all of them are claimed in
the same transaction as the change (so a busy instance refuses the whole change with
422 and nothing is written), then one apply workflow runs per instance.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coffer import engines
from coffer.clock import utcnow
from coffer.contracts.api_v1 import ConfigurationCreate, ConfigurationUpdate
from coffer.contracts.engine import ParameterRule
from coffer.db.models import Configuration, Datastore, DatastoreVersion, Instance
from coffer.domain.parameters import validate_values
from coffer.domain.states import TaskStatus
from coffer.errors import BadRequest, NotFound, UnprocessableEntity
from coffer.services import catalog, records
from coffer.services.claims import claim
from coffer.services.runtime import Runtime
from coffer.workflows import instances as wf


@dataclass(frozen=True)
class ConfigurationRecord:
    configuration: Configuration
    version: DatastoreVersion
    datastore: Datastore
    instance_count: int

    @property
    def values(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.configuration.values_json)
        return loaded


def rules_for(version: DatastoreVersion) -> tuple[ParameterRule, ...]:
    return engines.catalog(version.manager).parameter_rules(version.version)


def validated(version: DatastoreVersion, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked by the rules (422) and then by the engine's own checks."""
    clean = validate_values(rules_for(version), values)
    try:
        engines.catalog(version.manager).validate_parameters(clean)
    except BadRequest as exc:
        raise UnprocessableEntity(exc.message) from None
    return clean


def list_parameters(
    rt: Runtime, datastore: str | None, version: str
) -> tuple[DatastoreVersion, tuple[ParameterRule, ...]]:
    v = catalog.get_version(rt, datastore, version)
    return v, rules_for(v)


def get_parameter(
    rt: Runtime, datastore: str | None, version: str, name: str
) -> tuple[DatastoreVersion, ParameterRule]:
    v, rules = list_parameters(rt, datastore, version)
    for rule in rules:
        if rule.name == name:
            return v, rule
    raise NotFound(f"Configuration parameter {name} could not be found for {v.manager} {v.name}.")


def _record(s: Session, cfg: Configuration) -> ConfigurationRecord:
    version = s.get(DatastoreVersion, cfg.datastore_version_id)
    assert version is not None
    ds = s.get(Datastore, version.datastore_id)
    assert ds is not None
    count = s.scalar(
        select(func.count())
        .select_from(Instance)
        .where(Instance.configuration_id == cfg.id, Instance.deleted.is_(False))
    )
    return ConfigurationRecord(cfg, version, ds, int(count or 0))


def _load(s: Session, project_id: str | None, config_id: str) -> Configuration:
    cfg = s.get(Configuration, config_id)
    if cfg is None or (project_id is not None and cfg.project_id != project_id):
        raise NotFound(f"Configuration group {config_id} could not be found.")
    return cfg


def create(rt: Runtime, project_id: str, body: ConfigurationCreate) -> ConfigurationRecord:
    with rt.sessions.begin() as s:
        ds = body.datastore
        ref = catalog.resolve_version(s, ds.type if ds else None, ds.version if ds else None)
        values = validated(ref.version, body.values)
        now = utcnow()
        cfg = Configuration(
            id=str(uuid.uuid4()),
            project_id=project_id,
            name=body.name.strip() or body.name,
            description=body.description or "",
            datastore_version_id=ref.version.id,
            values_json=json.dumps(values, sort_keys=True),
            created=now,
            updated=now,
        )
        s.add(cfg)
        s.flush()
        return _record(s, cfg)


def get(rt: Runtime, project_id: str | None, config_id: str) -> ConfigurationRecord:
    with rt.sessions() as s:
        return _record(s, _load(s, project_id, config_id))


def list_all(rt: Runtime, project_id: str) -> list[ConfigurationRecord]:
    with rt.sessions() as s:
        rows = s.scalars(
            select(Configuration)
            .where(Configuration.project_id == project_id)
            .order_by(Configuration.created)
        )
        return [_record(s, cfg) for cfg in rows]


def attached_instances(rt: Runtime, project_id: str | None, config_id: str) -> list[Instance]:
    with rt.sessions() as s:
        _load(s, project_id, config_id)
        return list(
            s.scalars(
                select(Instance)
                .where(Instance.configuration_id == config_id, Instance.deleted.is_(False))
                .order_by(Instance.created)
            )
        )


def update(
    rt: Runtime, project_id: str | None, config_id: str, body: ConfigurationUpdate, *, merge: bool
) -> None:
    """PUT replaces the values (and may rename); PATCH merges values. Re-applies to instances."""
    started: list[tuple[str, str, str, bool]] = []
    with rt.sessions.begin() as s:
        cfg = _load(s, project_id, config_id)
        version = s.get(DatastoreVersion, cfg.datastore_version_id)
        assert version is not None
        if body.values is not None:
            base: dict[str, Any] = json.loads(cfg.values_json) if merge else {}
            base.update(body.values)
            values = validated(version, base)
            cfg.values_json = json.dumps(values, sort_keys=True)
            started = _claim_attached(rt, s, cfg, values)
        if body.name is not None:
            cfg.name = body.name
        if body.description is not None:
            cfg.description = body.description
        cfg.updated = utcnow()
    for workflow_id, instance_id, values_json, pending in started:
        wf.start_apply_configuration(workflow_id, instance_id, values_json, pending)


def _claim_attached(
    rt: Runtime, s: Session, cfg: Configuration, values: dict[str, Any]
) -> list[tuple[str, str, str, bool]]:
    out = []
    rows = s.scalars(
        select(Instance).where(Instance.configuration_id == cfg.id, Instance.deleted.is_(False))
    ).all()
    for inst in rows:
        pending = inst.task_status == TaskStatus.RESTART_REQUIRED.value
        workflow_id = f"configure-{inst.id}-{uuid.uuid4().hex[:8]}"
        claim(
            s,
            inst.id,
            to=TaskStatus.UPDATING,
            workflow_id=workflow_id,
            timeout_s=rt.settings.action_timeout_s,
        )
        out.append((workflow_id, inst.id, json.dumps(values, sort_keys=True), pending))
    return out


def delete(rt: Runtime, project_id: str | None, config_id: str) -> None:
    with rt.sessions.begin() as s:
        cfg = _load(s, project_id, config_id)
        attached = s.scalar(
            select(func.count())
            .select_from(Instance)
            .where(Instance.configuration_id == config_id, Instance.deleted.is_(False))
        )
        if attached:
            raise BadRequest(
                f"Configuration group {config_id} is attached to {attached} instance(s); "
                "detach it first."
            )
        s.delete(cfg)


def resolve_for_new_instance(
    s: Session, project_id: str, config_id: str, version: DatastoreVersion
) -> Configuration:
    cfg = _load(s, project_id, config_id)
    if cfg.datastore_version_id != version.id:
        raise BadRequest(
            f"Configuration group {config_id} is for another datastore version than the instance's."
        )
    return cfg


def attach(rt: Runtime, project_id: str | None, instance_id: str, config_id: str | None) -> None:
    """Attach ``config_id`` (or detach with None) and apply the resulting values."""
    with rt.sessions.begin() as s:
        rec = records.load(s, instance_id, project_id)
        inst = rec.instance
        if config_id is None:
            if inst.configuration_id is None:
                return
            values: dict[str, Any] = {}
        else:
            if inst.configuration_id is not None:
                raise BadRequest(
                    f"Instance {instance_id} already has configuration group "
                    f"{inst.configuration_id} attached; detach it first."
                )
            cfg = resolve_for_new_instance(s, inst.project_id, config_id, rec.version)
            values = json.loads(cfg.values_json)
        pending = inst.task_status == TaskStatus.RESTART_REQUIRED.value
        workflow_id = f"configure-{instance_id}-{uuid.uuid4().hex[:8]}"
        claim(
            s,
            instance_id,
            to=TaskStatus.UPDATING,
            workflow_id=workflow_id,
            timeout_s=rt.settings.action_timeout_s,
        )
        inst.configuration_id = config_id
    wf.start_apply_configuration(
        workflow_id, instance_id, json.dumps(values, sort_keys=True), pending
    )


def effective_configuration(
    rt: Runtime, project_id: str | None, instance_id: str
) -> dict[str, Any]:
    """The instance's rendered overrides: flavor-derived settings, then its group's values."""
    with rt.sessions() as s:
        rec = records.load(s, instance_id, project_id)
    out: dict[str, Any] = dict(
        engines.catalog(rec.version.manager).memory_settings(rec.flavor.ram_mb)
    )
    out.update(json.loads(rec.instance.parameters_json or "{}"))
    return out
