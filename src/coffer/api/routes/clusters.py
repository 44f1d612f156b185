"""Trove cluster routes: create, list, show, actions, delete, and a member's view."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from coffer.api import views
from coffer.api.deps import PrincipalDep, RuntimeDep, scope
from coffer.api.openapi import AUTHENTICATED, replies
from coffer.api.routes.common import PREFIX, accepted, paged, view_context
from coffer.contracts.api_v1 import ClusterAction, ClusterCreateBody
from coffer.contracts.api_v1_replies import ClusterList, ClusterReply, InstanceReply
from coffer.errors import NotFound
from coffer.services import clusters, instances

router = APIRouter(prefix=PREFIX, tags=["clusters"])


def _show(
    request: Request, rt: RuntimeDep, who: PrincipalDep, project_id: str, cid: str
) -> dict[str, Any]:
    rec = clusters.get(rt, scope(who, project_id), cid)
    return {"cluster": views.cluster(view_context(request, rt, who, project_id), rec)}


@router.get("/clusters", **replies(ClusterList, *AUTHENTICATED))
def list_clusters(
    project_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    limit: int | None = None,
    marker: str | None = None,
) -> dict[str, Any]:
    ctx = view_context(request, rt, who, project_id)
    items = [views.cluster(ctx, rec) for rec in clusters.list_all(rt, project_id)]
    return paged(request, "clusters", items, limit, marker)


@router.post("/clusters", **replies(ClusterReply, *AUTHENTICATED, 404, 413, 422, 501, 503))
def create_cluster(
    project_id: str, body: ClusterCreateBody, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    cluster_id = clusters.create(rt, project_id, body.cluster)
    return _show(request, rt, who, project_id, cluster_id)


@router.get("/clusters/{cluster_id}", **replies(ClusterReply, *AUTHENTICATED, 404))
def show_cluster(
    project_id: str, cluster_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    return _show(request, rt, who, project_id, cluster_id)


@router.post(
    "/clusters/{cluster_id}",
    **replies(ClusterReply, *AUTHENTICATED, 404, 413, 422, 501, 503, status=202),
)
def cluster_action(
    project_id: str,
    cluster_id: str,
    body: ClusterAction,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
) -> dict[str, Any]:
    clusters.act(rt, who, scope(who, project_id), cluster_id, body)
    return _show(request, rt, who, project_id, cluster_id)


@router.delete("/clusters/{cluster_id}", **replies(None, *AUTHENTICATED, 404, 422, status=202))
def delete_cluster(project_id: str, cluster_id: str, rt: RuntimeDep, who: PrincipalDep) -> Response:
    clusters.delete(rt, scope(who, project_id), cluster_id)
    return accepted()


@router.get(
    "/clusters/{cluster_id}/instances/{instance_id}",
    **replies(InstanceReply, *AUTHENTICATED, 404),
)
def show_member(
    project_id: str,
    cluster_id: str,
    instance_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
) -> dict[str, Any]:
    rec = instances.get(rt, scope(who, project_id), instance_id)
    if rec.instance.cluster_id != cluster_id:
        raise NotFound(f"Instance {instance_id} is not a member of cluster {cluster_id}.")
    ctx = view_context(request, rt, who, project_id)
    return {"instance": views.instance(ctx, rec, detail=True)}
