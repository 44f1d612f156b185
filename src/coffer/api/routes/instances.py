"""Trove instance routes: CRUD and actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from coffer.api import views
from coffer.api.deps import PrincipalDep, RuntimeDep, scope
from coffer.api.openapi import AUTHENTICATED, replies
from coffer.api.routes.common import PREFIX, accepted, paged, view_context
from coffer.contracts.api_v1 import InstanceAction, InstanceCreateBody, InstanceUpdateBody
from coffer.contracts.api_v1_replies import InstanceList, InstanceReply
from coffer.services import instances

router = APIRouter(prefix=PREFIX, tags=["instances"])


def _list(
    project_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    *,
    detail: bool,
    limit: int | None,
    marker: str | None,
    include_clustered: bool,
) -> dict[str, Any]:
    ctx = view_context(request, rt, who, project_id)
    recs = instances.list_all(rt, project_id, include_clustered=include_clustered)
    items = [views.instance(ctx, rec, detail=detail) for rec in recs]
    return paged(request, "instances", items, limit, marker)


@router.get("/instances", **replies(InstanceList, *AUTHENTICATED))
def list_instances(
    project_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    limit: int | None = None,
    marker: str | None = None,
    include_clustered: bool = False,
) -> dict[str, Any]:
    """The project's instances; cluster members only with ``include_clustered``."""
    return _list(
        project_id,
        request,
        rt,
        who,
        detail=False,
        limit=limit,
        marker=marker,
        include_clustered=include_clustered,
    )


@router.get("/instances/detail", **replies(InstanceList, *AUTHENTICATED))
def list_instances_detail(
    project_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    limit: int | None = None,
    marker: str | None = None,
    include_clustered: bool = False,
) -> dict[str, Any]:
    return _list(
        project_id,
        request,
        rt,
        who,
        detail=True,
        limit=limit,
        marker=marker,
        include_clustered=include_clustered,
    )


@router.post("/instances", **replies(InstanceReply, *AUTHENTICATED, 404, 409, 413, 422, 501, 503))
def create_instance(
    project_id: str, body: InstanceCreateBody, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    rec = instances.create(rt, project_id, body.instance)
    return {
        "instance": views.instance(view_context(request, rt, who, project_id), rec, detail=True)
    }


@router.get("/instances/{instance_id}", **replies(InstanceReply, *AUTHENTICATED, 404))
def show_instance(
    project_id: str, instance_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    rec = instances.get(rt, scope(who, project_id), instance_id)
    return {
        "instance": views.instance(view_context(request, rt, who, project_id), rec, detail=True)
    }


@router.put("/instances/{instance_id}", **replies(None, *AUTHENTICATED, 404, 422, 501, status=202))
def update_instance(
    project_id: str, instance_id: str, body: InstanceUpdateBody, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    instances.rename(rt, scope(who, project_id), instance_id, body.instance)
    return accepted()


@router.patch(
    "/instances/{instance_id}", **replies(None, *AUTHENTICATED, 404, 422, 501, status=202)
)
def edit_instance(
    project_id: str, instance_id: str, body: InstanceUpdateBody, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    instances.rename(rt, scope(who, project_id), instance_id, body.instance)
    return accepted()


@router.delete("/instances/{instance_id}", **replies(None, *AUTHENTICATED, 404, 422, status=202))
def delete_instance(
    project_id: str, instance_id: str, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    instances.delete(rt, scope(who, project_id), instance_id)
    return accepted()


@router.post(
    "/instances/{instance_id}/action",
    **replies(None, *AUTHENTICATED, 404, 413, 422, 501, 503, status=202),
)
def instance_action(
    project_id: str, instance_id: str, body: InstanceAction, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    instances.act(rt, who, scope(who, project_id), instance_id, body)
    return accepted()
