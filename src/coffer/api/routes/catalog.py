"""Flavors, datastores, versions and limits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from coffer.api import views
from coffer.api.deps import PrincipalDep, RuntimeDep
from coffer.api.openapi import AUTHENTICATED, replies
from coffer.api.routes.common import PREFIX, view_context
from coffer.contracts.api_v1 import FlavorBody
from coffer.contracts.api_v1_replies import (
    DatastoreList,
    DatastoreReply,
    DatastoreVersionList,
    DatastoreVersionReply,
    FlavorList,
    FlavorReply,
    LimitsReply,
)
from coffer.services import catalog, quotas

router = APIRouter(prefix=PREFIX, tags=["catalog"])


@router.get("/flavors", **replies(FlavorList, *AUTHENTICATED))
def list_flavors(
    project_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    ctx = view_context(request, rt, who, project_id)
    return {"flavors": [views.flavor(ctx, f) for f in catalog.list_flavors(rt)]}


@router.get("/flavors/{flavor_id}", **replies(FlavorReply, *AUTHENTICATED, 404))
def show_flavor(
    project_id: str, flavor_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    ctx = view_context(request, rt, who, project_id)
    return {"flavor": views.flavor(ctx, catalog.get_flavor(rt, flavor_id))}


@router.post("/flavors", **replies(FlavorReply, *AUTHENTICATED))
def create_flavor(
    project_id: str, body: FlavorBody, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    """Coffer extension (admin): add a flavor."""
    who.require_admin()
    f = body.flavor
    created = catalog.create_flavor(
        rt, catalog.FlavorRequest(name=f.name, ram_mb=f.ram, vcpus=f.vcpus, disk_gb=f.disk, id=f.id)
    )
    return {"flavor": views.flavor(view_context(request, rt, who, project_id), created)}


@router.get("/datastores", **replies(DatastoreList, *AUTHENTICATED))
def list_datastores(
    project_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    ctx = view_context(request, rt, who, project_id)
    listing = catalog.list_datastores(rt, include_inactive=who.is_admin)
    return {"datastores": [views.datastore(ctx, d.datastore, d.versions) for d in listing]}


@router.get(
    "/datastores/versions/{version_id}", **replies(DatastoreVersionReply, *AUTHENTICATED, 404)
)
def show_version_by_id(
    project_id: str, version_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    ctx = view_context(request, rt, who, project_id)
    v = catalog.get_version(rt, None, version_id)
    return {"version": views.version(ctx, v, admin=who.is_admin)}


@router.get("/datastores/{datastore}", **replies(DatastoreReply, *AUTHENTICATED, 404))
def show_datastore(
    project_id: str, datastore: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    ctx = view_context(request, rt, who, project_id)
    d = catalog.get_datastore(rt, datastore, include_inactive=who.is_admin)
    return {"datastore": views.datastore(ctx, d.datastore, d.versions)}


@router.get(
    "/datastores/{datastore}/versions", **replies(DatastoreVersionList, *AUTHENTICATED, 404)
)
def list_versions(
    project_id: str, datastore: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    ctx = view_context(request, rt, who, project_id)
    d = catalog.get_datastore(rt, datastore, include_inactive=who.is_admin)
    return {"versions": [views.version(ctx, v, admin=who.is_admin) for v in d.versions]}


@router.get(
    "/datastores/{datastore}/versions/{version}",
    **replies(DatastoreVersionReply, *AUTHENTICATED, 404),
)
def show_version(
    project_id: str,
    datastore: str,
    version: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
) -> dict[str, Any]:
    ctx = view_context(request, rt, who, project_id)
    v = catalog.get_version(rt, datastore, version)
    return {"version": views.version(ctx, v, admin=who.is_admin)}


@router.get("/limits", **replies(LimitsReply, *AUTHENTICATED))
def limits(project_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    lims = quotas.current_limits(rt, project_id)
    absolute: dict[str, Any] = {"verb": "ABSOLUTE"}
    absolute.update({f"max_{k}": v for k, v in lims.items()})
    return {"limits": [absolute]}
