"""Admin routes: Trove's ``mgmt`` (instances, quotas) and Coffer's projects/tokens/hosts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from coffer.api import views
from coffer.api.deps import PrincipalDep, RuntimeDep
from coffer.api.routes.common import PREFIX, view_context
from coffer.contracts.api_v1 import ProjectBody, QuotasBody, TokenBody
from coffer.services import agents, hosts, instances, projects, quotas

router = APIRouter(prefix=PREFIX + "/mgmt", tags=["mgmt"])


@router.get("/instances")
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


@router.get("/quotas/{target}")
def show_quotas(project_id: str, target: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    who.check_project(target)
    return {"quotas": quotas.show(rt, target)}


@router.put("/quotas/{target}")
def update_quotas(
    project_id: str, target: str, body: QuotasBody, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    who.require_admin()
    return {"quotas": quotas.update_limits(rt, target, body.quotas)}


@router.post("/projects")
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


@router.get("/projects")
def list_projects(project_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    who.require_admin()
    return {"projects": projects.list_projects(rt)}


@router.post("/tokens")
def create_token(
    project_id: str, body: TokenBody, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    """Coffer extension: another token for a project (admin)."""
    who.require_admin()
    return {"credentials": projects.create_token(rt, body.token.project).as_dict()}


@router.get("/hosts")
def list_hosts(project_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Coffer extension: database hosts (agents) and their freshness."""
    who.require_admin()
    return {"hosts": hosts.list_hosts(rt)}


@router.post("/hosts/join-tokens")
def create_join_token(project_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Coffer extension: a token with which one more agent (database host) can register."""
    who.require_admin()
    return {"join_token": agents.create_join_token(rt)}
