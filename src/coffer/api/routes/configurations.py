"""Trove configuration groups and datastore parameter catalogues."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from coffer.api import views
from coffer.api.deps import PrincipalDep, RuntimeDep, scope
from coffer.api.openapi import AUTHENTICATED, replies
from coffer.api.routes.common import PREFIX, accepted, view_context
from coffer.contracts.api_v1 import ConfigurationCreateBody, ConfigurationUpdateBody
from coffer.contracts.api_v1_replies import (
    ConfigurationInstances,
    ConfigurationList,
    ConfigurationReply,
    EffectiveConfigurationReply,
    Parameter,
    ParameterList,
)
from coffer.services import configurations

router = APIRouter(prefix=PREFIX, tags=["configurations"])


@router.get(
    "/datastores/{datastore}/versions/{version}/parameters",
    **replies(ParameterList, *AUTHENTICATED, 404),
)
def list_parameters(
    project_id: str, datastore: str, version: str, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    v, rules = configurations.list_parameters(rt, datastore, version)
    return {"configuration-parameters": [views.parameter(v, r) for r in rules]}


@router.get(
    "/datastores/{datastore}/versions/{version}/parameters/{name}",
    **replies(Parameter, *AUTHENTICATED, 404),
)
def show_parameter(
    project_id: str, datastore: str, version: str, name: str, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    v, rule = configurations.get_parameter(rt, datastore, version, name)
    return views.parameter(v, rule)


@router.get(
    "/datastores/versions/{version_id}/parameters",
    **replies(ParameterList, *AUTHENTICATED, 404),
)
def list_parameters_by_version(
    project_id: str, version_id: str, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    v, rules = configurations.list_parameters(rt, None, version_id)
    return {"configuration-parameters": [views.parameter(v, r) for r in rules]}


@router.get(
    "/datastores/versions/{version_id}/parameters/{name}",
    **replies(Parameter, *AUTHENTICATED, 404),
)
def show_parameter_by_version(
    project_id: str, version_id: str, name: str, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    v, rule = configurations.get_parameter(rt, None, version_id, name)
    return views.parameter(v, rule)


@router.get("/configurations", **replies(ConfigurationList, *AUTHENTICATED))
def list_configurations(
    project_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    ctx = view_context(request, rt, who, project_id)
    return {
        "configurations": [
            views.configuration(ctx, c, detail=False)
            for c in configurations.list_all(rt, project_id)
        ]
    }


@router.post("/configurations", **replies(ConfigurationReply, *AUTHENTICATED, 404, 422))
def create_configuration(
    project_id: str,
    body: ConfigurationCreateBody,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
) -> dict[str, Any]:
    rec = configurations.create(rt, project_id, body.configuration)
    return {
        "configuration": views.configuration(
            view_context(request, rt, who, project_id), rec, detail=True
        )
    }


@router.get("/configurations/{config_id}", **replies(ConfigurationReply, *AUTHENTICATED, 404))
def show_configuration(
    project_id: str, config_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    rec = configurations.get(rt, scope(who, project_id), config_id)
    return {
        "configuration": views.configuration(
            view_context(request, rt, who, project_id), rec, detail=True
        )
    }


@router.get(
    "/configurations/{config_id}/instances",
    **replies(ConfigurationInstances, *AUTHENTICATED, 404),
)
def configuration_instances(
    project_id: str, config_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    insts = configurations.attached_instances(rt, scope(who, project_id), config_id)
    return {"instances": [{"id": i.id, "name": i.name} for i in insts]}


@router.put("/configurations/{config_id}", **replies(None, *AUTHENTICATED, 404, 422, status=202))
def replace_configuration(
    project_id: str,
    config_id: str,
    body: ConfigurationUpdateBody,
    rt: RuntimeDep,
    who: PrincipalDep,
) -> Response:
    configurations.update(rt, scope(who, project_id), config_id, body.configuration, merge=False)
    return accepted()


@router.patch("/configurations/{config_id}", **replies(None, *AUTHENTICATED, 404, 422, status=200))
def patch_configuration(
    project_id: str,
    config_id: str,
    body: ConfigurationUpdateBody,
    rt: RuntimeDep,
    who: PrincipalDep,
) -> Response:
    configurations.update(rt, scope(who, project_id), config_id, body.configuration, merge=True)
    return Response(status_code=200, media_type="application/json")


@router.delete("/configurations/{config_id}", **replies(None, *AUTHENTICATED, 404, 422, status=202))
def delete_configuration(
    project_id: str, config_id: str, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    configurations.delete(rt, scope(who, project_id), config_id)
    return accepted()


@router.get(
    "/instances/{instance_id}/configuration",
    **replies(EffectiveConfigurationReply, *AUTHENTICATED, 404),
)
def instance_configuration(
    project_id: str, instance_id: str, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    values = configurations.effective_configuration(rt, scope(who, project_id), instance_id)
    return {"instance": {"configuration": values}}
