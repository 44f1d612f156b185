"""Admin routes: Trove's ``mgmt`` (instances, quotas) and Coffer's projects/tokens/hosts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from coffer.api import views
from coffer.api.deps import PrincipalDep, RuntimeDep
from coffer.api.openapi import AUTHENTICATED, replies
from coffer.api.routes.common import PREFIX, accepted, view_context
from coffer.contracts.api_v1 import (
    ClusterResetBody,
    DatastoreVersionBody,
    DatastoreVersionPatch,
    ProjectBody,
    QuotasBody,
    TokenBody,
)
from coffer.contracts.api_v1_replies import (
    ClusterList,
    ClusterReply,
    CredentialsReply,
    DatastoreVersionList,
    DatastoreVersionReply,
    HostList,
    InstanceList,
    InstanceReply,
    JoinTokenReply,
    ProjectCreated,
    ProjectList,
    QuotaShowReply,
    QuotaUpdateReply,
)
from coffer.errors import NotFound
from coffer.services import (
    agents,
    catalog,
    clusters,
    hosts,
    instances,
    projects,
    quotas,
)

router = APIRouter(prefix=PREFIX + "/mgmt", tags=["mgmt"])


@router.get("/instances", **replies(InstanceList, *AUTHENTICATED))
def mgmt_instances(
    project_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    include_clustered: bool = False,
    deleted: bool = False,
) -> dict[str, Any]:
    who.require_admin()
    ctx = view_context(request, rt, who, project_id)
    return {
        "instances": [views.instance(ctx, rec, detail=True) for rec in instances.list_all(rt, None)]
    }


@router.get("/instances/{instance_id}", **replies(InstanceReply, *AUTHENTICATED, 404))
def mgmt_instance(
    project_id: str, instance_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    """Trove mgmt show: any project's instance, with its host and volume details."""
    who.require_admin()
    rec = instances.get(rt, None, instance_id)
    out = views.instance(view_context(request, rt, who, project_id), rec, detail=True)
    out["server"] = {
        "id": rec.host.id,
        "name": rec.host.name,
        "host": rec.host.name,
        "tenant_id": rec.instance.project_id,
        "addresses": out["addresses"],
    }
    out["task_description"] = rec.instance.task_status
    out["deleted"] = rec.instance.deleted
    return {"instance": out}


@router.get("/clusters", **replies(ClusterList, *AUTHENTICATED))
def mgmt_clusters(
    project_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    """Every project's clusters."""
    who.require_admin()
    ctx = view_context(request, rt, who, project_id)
    return {"clusters": [views.cluster(ctx, rec) for rec in clusters.list_all(rt, None)]}


@router.get("/clusters/{cluster_id}", **replies(ClusterReply, *AUTHENTICATED, 404))
def mgmt_cluster(
    project_id: str, cluster_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    who.require_admin()
    rec = clusters.get(rt, None, cluster_id)
    return {"cluster": views.cluster(view_context(request, rt, who, project_id), rec)}


@router.post("/clusters/{cluster_id}/action", **replies(None, *AUTHENTICATED, 404, status=202))
def mgmt_cluster_action(
    project_id: str, cluster_id: str, body: ClusterResetBody, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    """Trove's ``{"reset-task": {}}``: the cluster's task (and its members') back to NONE."""
    who.require_admin()
    clusters.reset_status(rt, None, cluster_id)
    return accepted()


@router.get("/quotas/{target}", **replies(QuotaShowReply, *AUTHENTICATED, 404))
def show_quotas(project_id: str, target: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    who.check_project(target)
    return {"quotas": quotas.show(rt, target)}


@router.put("/quotas/{target}", **replies(QuotaUpdateReply, *AUTHENTICATED, 404))
def update_quotas(
    project_id: str, target: str, body: QuotasBody, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    who.require_admin()
    return {"quotas": quotas.update_limits(rt, target, body.quotas)}


@router.post("/projects", **replies(ProjectCreated, *AUTHENTICATED))
def create_project(
    project_id: str, body: ProjectBody, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    """Coffer extension: a new project and its first token."""
    who.require_admin()
    creds = projects.create_project(rt, body.project.name)
    return {
        "project": {"id": creds.project_id, "name": body.project.name},
        "credentials": creds.as_dict(),
    }


@router.get("/projects", **replies(ProjectList, *AUTHENTICATED))
def list_projects(project_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    who.require_admin()
    return {"projects": projects.list_projects(rt)}


@router.post("/tokens", **replies(CredentialsReply, *AUTHENTICATED, 404))
def create_token(
    project_id: str, body: TokenBody, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    """Coffer extension: another token for a project (admin)."""
    who.require_admin()
    return {"credentials": projects.create_token(rt, body.token.project).as_dict()}


@router.get("/hosts", **replies(HostList, *AUTHENTICATED))
def list_hosts(project_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Coffer extension: database hosts (agents) and their freshness."""
    who.require_admin()
    return {"hosts": hosts.list_hosts(rt)}


@router.post("/hosts/join-tokens", **replies(JoinTokenReply, *AUTHENTICATED))
def create_join_token(project_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Coffer extension: a token with which one more agent (database host) can register."""
    who.require_admin()
    return {"join_token": agents.create_join_token(rt)}


@router.post("/datastore-versions", **replies(None, *AUTHENTICATED, 404, status=202))
def register_version(
    project_id: str, body: DatastoreVersionBody, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    """Trove mgmt: register a datastore version of an installed engine."""
    who.require_admin()
    v = body.version
    catalog.register_version(
        rt,
        datastore_name=v.datastore_name,
        name=v.name,
        manager=v.datastore_manager,
        version=v.version,
        active=bool(v.active),
        default=bool(v.default),
    )
    return accepted()


@router.get("/datastore-versions", **replies(DatastoreVersionList, *AUTHENTICATED))
def list_versions(
    project_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    who.require_admin()
    ctx = view_context(request, rt, who, project_id)
    return {"versions": [views.version(ctx, v, admin=True) for v in catalog.list_all_versions(rt)]}


@router.get(
    "/datastore-versions/{version_id}", **replies(DatastoreVersionReply, *AUTHENTICATED, 404)
)
def show_version(
    project_id: str, version_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    who.require_admin()
    ctx = view_context(request, rt, who, project_id)
    for v in catalog.list_all_versions(rt):
        if v.id == version_id:
            return {"version": views.version(ctx, v, admin=True)}
    raise NotFound(f"Datastore version '{version_id}' cannot be found.")


@router.patch("/datastore-versions/{version_id}", **replies(None, *AUTHENTICATED, 404, status=202))
def patch_version(
    project_id: str, version_id: str, body: DatastoreVersionPatch, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    who.require_admin()
    catalog.update_version(rt, version_id, body.model_dump(exclude_unset=True))
    return accepted()


@router.delete("/datastore-versions/{version_id}", **replies(None, *AUTHENTICATED, 404, status=202))
def delete_version(project_id: str, version_id: str, rt: RuntimeDep, who: PrincipalDep) -> Response:
    who.require_admin()
    catalog.delete_version(rt, version_id)
    return accepted()
