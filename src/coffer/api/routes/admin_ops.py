"""Trove's databases, users and root routes (carried out by the instance's agent)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from coffer.api.deps import PrincipalDep, RuntimeDep, scope
from coffer.api.openapi import AGENT, AUTHENTICATED, replies
from coffer.api.routes.common import PREFIX, accepted, no_content, paged
from coffer.contracts.api_v1 import (
    DatabasesBody,
    GrantBody,
    RootEnableBody,
    UserAttributesBody,
    UsersBody,
    UsersPasswordBody,
)
from coffer.contracts.api_v1_replies import (
    DatabaseList,
    RootEnabled,
    RootUserReply,
    UserList,
    UserReply,
)
from coffer.contracts.engine import DatabaseSpec, UserSpec, UserUpdate
from coffer.errors import BadRequest, NotImplementedByDatastore
from coffer.security import new_password
from coffer.services import admin_ops

router = APIRouter(prefix=PREFIX + "/instances/{instance_id}", tags=["databases", "users", "root"])

#: every route here reaches the instance's agent: unknown instance (404), not ACTIVE (422),
#: and the agent's answers (``AGENT``)
_ON_INSTANCE = (*AUTHENTICATED, 404, 422, *AGENT)


def split_user(segment: str) -> tuple[str, str]:
    """Trove's ``name@host`` path segment (host defaults to ``%``)."""
    text = unquote(segment)
    name, sep, host = text.rpartition("@")
    return (name, host) if sep and name else (text, "%")


def _dbs(names: list[str]) -> list[dict[str, str]]:
    return [{"name": n} for n in names]


def _user_view(u: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": u["name"],
        "host": u.get("host", "%"),
        "databases": _dbs(u.get("databases", [])),
    }


def _page(
    key: str, items: list[dict[str, Any]], request: Request, limit: int | None, marker: str | None
) -> dict[str, Any]:
    """Trove's limit/marker pagination over names, sorted as Trove lists them."""
    items = sorted(items, key=lambda item: (item["name"], item.get("host", "")))
    return paged(request, key, items, limit, marker, by="name")


@router.get("/databases", **replies(DatabaseList, *_ON_INSTANCE))
async def list_databases(
    project_id: str,
    instance_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    limit: int | None = None,
    marker: str | None = None,
) -> dict[str, Any]:
    result = await admin_ops.call(rt, scope(who, project_id), instance_id, "list_databases", {})
    dbs = [{"name": d["name"]} for d in result["databases"]]
    return _page("databases", dbs, request, limit, marker)


@router.post("/databases", **replies(None, *_ON_INSTANCE, status=202))
async def create_databases(
    project_id: str, instance_id: str, body: DatabasesBody, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    pid = scope(who, project_id)
    dbs = [
        DatabaseSpec(name=d.name, character_set=d.character_set, collate=d.collate)
        for d in body.databases
    ]
    await run_in_threadpool(admin_ops.validate_databases, rt, pid, instance_id, dbs)
    await admin_ops.call(
        rt, pid, instance_id, "create_databases", {"databases": [d.model_dump() for d in dbs]}
    )
    return accepted()


@router.get("/databases/{name}", **replies(None, *AUTHENTICATED, 501))
def show_database(project_id: str, instance_id: str, name: str, who: PrincipalDep) -> Response:
    raise NotImplementedByDatastore(
        "showing a single database is not implemented; list them instead"
    )


@router.delete("/databases/{name}", **replies(None, *_ON_INSTANCE, status=202))
async def delete_database(
    project_id: str, instance_id: str, name: str, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    await admin_ops.call(rt, scope(who, project_id), instance_id, "delete_database", {"name": name})
    return accepted()


@router.get("/users", **replies(UserList, *_ON_INSTANCE))
async def list_users(
    project_id: str,
    instance_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    limit: int | None = None,
    marker: str | None = None,
) -> dict[str, Any]:
    result = await admin_ops.call(rt, scope(who, project_id), instance_id, "list_users", {})
    return _page("users", [_user_view(u) for u in result["users"]], request, limit, marker)


@router.post("/users", **replies(None, *_ON_INSTANCE, status=202))
async def create_users(
    project_id: str, instance_id: str, body: UsersBody, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    pid = scope(who, project_id)
    users = [
        UserSpec(
            name=u.name,
            host=u.host or "%",
            password=u.password,
            databases=tuple(d.name for d in u.databases),
        )
        for u in body.users
    ]
    keys = [(u.name, u.host) for u in users]
    if len(set(keys)) != len(keys):
        raise BadRequest("the same user is listed twice")
    await run_in_threadpool(admin_ops.validate_users, rt, pid, instance_id, users)
    await admin_ops.call(
        rt, pid, instance_id, "create_users", {"users": [u.model_dump() for u in users]}
    )
    return accepted()


@router.put("/users", **replies(None, *_ON_INSTANCE, status=202))
async def change_passwords(
    project_id: str, instance_id: str, body: UsersPasswordBody, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    pid = scope(who, project_id)
    for u in body.users:
        update = UserUpdate(password=u.password)
        await admin_ops.call(
            rt,
            pid,
            instance_id,
            "update_user",
            {"name": u.name, "host": u.host or "%", "update": update.model_dump()},
        )
    return accepted()


@router.get("/users/{user}", **replies(UserReply, *_ON_INSTANCE))
async def show_user(
    project_id: str, instance_id: str, user: str, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    name, host = split_user(user)
    result = await admin_ops.call(
        rt, scope(who, project_id), instance_id, "get_user", {"name": name, "host": host}
    )
    return {"user": _user_view(result["user"])}


@router.put("/users/{user}", **replies(None, *_ON_INSTANCE, status=202))
async def update_user(
    project_id: str,
    instance_id: str,
    user: str,
    body: UserAttributesBody,
    rt: RuntimeDep,
    who: PrincipalDep,
) -> Response:
    name, host = split_user(user)
    attrs = body.user
    if attrs.name is None and attrs.password is None and attrs.host is None:
        raise BadRequest("Validation error: user needs at least one of name, password, host")
    if attrs.name is not None:
        await run_in_threadpool(
            admin_ops.validate_users,
            rt,
            scope(who, project_id),
            instance_id,
            [UserSpec(name=attrs.name, host=attrs.host or host, password="x")],
        )
    update = UserUpdate(name=attrs.name, host=attrs.host, password=attrs.password)
    await admin_ops.call(
        rt,
        scope(who, project_id),
        instance_id,
        "update_user",
        {"name": name, "host": host, "update": update.model_dump()},
    )
    return accepted()


@router.delete("/users/{user}", **replies(None, *_ON_INSTANCE, status=202))
async def delete_user(
    project_id: str, instance_id: str, user: str, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    name, host = split_user(user)
    await admin_ops.call(
        rt, scope(who, project_id), instance_id, "delete_user", {"name": name, "host": host}
    )
    return accepted()


@router.get("/users/{user}/databases", **replies(DatabaseList, *_ON_INSTANCE))
async def list_access(
    project_id: str, instance_id: str, user: str, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    name, host = split_user(user)
    result = await admin_ops.call(
        rt, scope(who, project_id), instance_id, "list_access", {"name": name, "host": host}
    )
    return {"databases": _dbs(result["databases"])}


@router.put("/users/{user}/databases", **replies(None, *_ON_INSTANCE, status=202))
async def grant_access(
    project_id: str, instance_id: str, user: str, body: GrantBody, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    name, host = split_user(user)
    dbs = [d.name for d in body.databases]
    await admin_ops.call(
        rt,
        scope(who, project_id),
        instance_id,
        "grant_access",
        {"name": name, "host": host, "databases": dbs},
    )
    return accepted()


@router.delete("/users/{user}/databases/{database}", **replies(None, *_ON_INSTANCE, status=202))
async def revoke_access(
    project_id: str, instance_id: str, user: str, database: str, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    name, host = split_user(user)
    await admin_ops.call(
        rt,
        scope(who, project_id),
        instance_id,
        "revoke_access",
        {"name": name, "host": host, "database": database},
    )
    return accepted()


@router.get("/root", **replies(RootEnabled, *_ON_INSTANCE))
async def root_show(
    project_id: str, instance_id: str, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    result = await admin_ops.call(rt, scope(who, project_id), instance_id, "is_root_enabled", {})
    return {"rootEnabled": bool(result["enabled"])}


@router.post(
    "/root",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": RootEnableBody.model_json_schema()}},
        }
    },
    **replies(RootUserReply, *_ON_INSTANCE),
)
async def root_enable(
    project_id: str, instance_id: str, request: Request, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    """The body is optional (``{"password": ...}``); without a password one is generated."""
    raw = await request.body()
    body = RootEnableBody.model_validate_json(raw) if raw.strip() else RootEnableBody()
    password = body.password or new_password()
    result = await admin_ops.call(
        rt, scope(who, project_id), instance_id, "enable_root", {"password": password}
    )
    await run_in_threadpool(admin_ops.note_root_enabled, rt, instance_id, True)
    return {"user": {"name": result["name"], "password": result["password"]}}


@router.delete("/root", **replies(None, *_ON_INSTANCE, status=204))
async def root_disable(
    project_id: str, instance_id: str, rt: RuntimeDep, who: PrincipalDep
) -> Response:
    await admin_ops.call(rt, scope(who, project_id), instance_id, "disable_root", {})
    await run_in_threadpool(admin_ops.note_root_enabled, rt, instance_id, False)
    return no_content()
