"""Trove backups: create, list, show, delete, and an instance's backups; Coffer's backup
schedules beside them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from coffer.api import views
from coffer.api.deps import PrincipalDep, RuntimeDep, scope
from coffer.api.openapi import AUTHENTICATED, replies
from coffer.api.routes.common import PREFIX, accepted, paged, view_context
from coffer.contracts.api_v1 import (
    BackupCreateBody,
    BackupScheduleCreateBody,
    BackupStrategyCreateBody,
)
from coffer.contracts.api_v1_replies import (
    BackupList,
    BackupReply,
    BackupScheduleList,
    BackupScheduleReply,
    BackupStrategyList,
    BackupStrategyReply,
)
from coffer.errors import BadRequest, Forbidden
from coffer.services import backup_schedules, backup_strategies, backups, instances
from coffer.services.auth import Principal
from coffer.services.backup_records import BackupRecord

router = APIRouter(prefix=PREFIX, tags=["backups"])


def _page(
    request: Request, recs: list[BackupRecord], limit: int | None, marker: str | None
) -> dict[str, Any]:
    return paged(request, "backups", [views.backup(r) for r in recs], limit, marker)


@router.get("/backups", **replies(BackupList, *AUTHENTICATED))
def list_backups(
    project_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    datastore: str | None = None,
    instance_id: str | None = None,
    all_projects: bool = False,
    limit: int | None = None,
    marker: str | None = None,
    wanted: Annotated[str | None, Query(alias="project_id")] = None,
) -> dict[str, Any]:
    """The project's backups; an admin may ask for every project's (``all_projects``) or
    another one's (``project_id``)."""
    owner: str | None = project_id
    if all_projects or wanted:
        if not who.is_admin:
            raise Forbidden("listing other projects' backups needs the admin role")
        owner = wanted or None
    recs = backups.list_all(rt, owner, instance_id=instance_id, datastore=datastore)
    return _page(request, recs, limit, marker)


@router.post(
    "/backups",
    **replies(BackupReply, *AUTHENTICATED, 404, 409, 413, 422, 501, 503, status=202),
)
def create_backup(
    project_id: str, body: BackupCreateBody, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    rec = backups.create(rt, scope(who, project_id), body.backup)
    return {"backup": views.backup(rec)}


@router.get("/backups/{backup_id}", **replies(BackupReply, *AUTHENTICATED, 404))
def show_backup(
    project_id: str, backup_id: str, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    rec = backups.get(rt, scope(who, project_id), backup_id)
    return {"backup": views.backup(rec)}


@router.delete("/backups/{backup_id}", **replies(None, *AUTHENTICATED, 404, 422, status=202))
def delete_backup(project_id: str, backup_id: str, rt: RuntimeDep, who: PrincipalDep) -> Response:
    backups.delete(rt, scope(who, project_id), backup_id)
    return accepted()


@router.post(
    "/backups/{backup_id}/verify",
    **replies(None, *AUTHENTICATED, 404, 409, 422, 501, 503, status=202),
)
def verify_backup(project_id: str, backup_id: str, rt: RuntimeDep, who: PrincipalDep) -> Response:
    """Coffer extension: restore the backup into a throwaway instance and check it again."""
    backups.verify(rt, scope(who, project_id), backup_id)
    return accepted()


@router.get("/instances/{instance_id}/backups", **replies(BackupList, *AUTHENTICATED, 404))
def instance_backups(
    project_id: str,
    instance_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    limit: int | None = None,
    marker: str | None = None,
) -> dict[str, Any]:
    rec = instances.get(rt, scope(who, project_id), instance_id)
    recs = backups.list_all(rt, rec.instance.project_id, instance_id=instance_id)
    return _page(request, recs, limit, marker)


@router.post(
    "/backup_schedules",
    **replies(BackupScheduleReply, *AUTHENTICATED, 404, 501, status=202),
)
def create_schedule(
    project_id: str,
    body: BackupScheduleCreateBody,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
) -> dict[str, Any]:
    sched = backup_schedules.create(rt, scope(who, project_id), body.backup_schedule)
    ctx = view_context(request, rt, who, project_id)
    return {"backup_schedule": views.backup_schedule(ctx, sched)}


@router.get("/backup_schedules", **replies(BackupScheduleList, *AUTHENTICATED))
def list_schedules(
    project_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    instance_id: str | None = None,
) -> dict[str, Any]:
    ctx = view_context(request, rt, who, project_id)
    found = backup_schedules.list_all(rt, project_id, instance_id)
    return {"backup_schedules": [views.backup_schedule(ctx, x) for x in found]}


@router.get("/backup_schedules/{schedule_id}", **replies(BackupScheduleReply, *AUTHENTICATED, 404))
def show_schedule(
    project_id: str, schedule_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    sched = backup_schedules.get(rt, scope(who, project_id), schedule_id)
    ctx = view_context(request, rt, who, project_id)
    return {"backup_schedule": views.backup_schedule(ctx, sched)}


@router.delete("/backup_schedules/{schedule_id}", **replies(None, *AUTHENTICATED, 404, status=202))
def delete_schedule(
    project_id: str, schedule_id: str, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    backup_schedules.delete(rt, scope(who, project_id), schedule_id)
    return accepted()


def _strategy_project(who: Principal, project_id: str, wanted: str | None) -> str:
    """The project a strategy request is about: the URL's, or another one for admins."""
    if wanted and wanted != project_id:
        if not who.is_admin:
            raise Forbidden("backup strategies of other projects need the admin role")
        return wanted
    return project_id


@router.post("/backup_strategies", **replies(BackupStrategyReply, *AUTHENTICATED, 404, status=202))
def create_strategy(
    project_id: str, body: BackupStrategyCreateBody, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    given = body.backup_strategy
    if given.backend not in (None, "swift"):
        raise BadRequest(f"backend {given.backend!r} is not supported: only 'swift'")
    strategy = backup_strategies.create(
        rt, project_id, scope(who, project_id), given.instance_id, given.swift_container
    )
    return {"backup_strategy": views.backup_strategy(strategy)}


@router.get("/backup_strategies", **replies(BackupStrategyList, *AUTHENTICATED))
def list_strategies(
    project_id: str,
    rt: RuntimeDep,
    who: PrincipalDep,
    instance_id: str | None = None,
    project: Annotated[str | None, Query(alias="project_id")] = None,
) -> dict[str, Any]:
    owner = _strategy_project(who, project_id, project)
    found = backup_strategies.list_all(rt, owner, instance_id)
    return {"backup_strategies": [views.backup_strategy(x) for x in found]}


@router.delete("/backup_strategies", **replies(None, *AUTHENTICATED, 404, status=202))
def delete_strategy(
    project_id: str,
    rt: RuntimeDep,
    who: PrincipalDep,
    instance_id: str | None = None,
    project: Annotated[str | None, Query(alias="project_id")] = None,
) -> Response:
    backup_strategies.delete(rt, _strategy_project(who, project_id, project), instance_id)
    return accepted()
