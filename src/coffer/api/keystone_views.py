"""Keystone v3 documents: the version, a token with its service catalog, projects.

The catalog holds two services, each with public, internal and admin endpoints in region
RegionOne: ``database`` at Coffer's ``<base>/v1.0/<project_id>`` (what troveclient uses as
its endpoint) and ``identity`` at ``<base>/v3`` (where the openstack CLI looks projects up
by name). Ids of services, endpoints and roles are stable across restarts.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from coffer.services.identity import (
    DEFAULT_DOMAIN_ID,
    DEFAULT_DOMAIN_NAME,
    ProjectView,
    TokenGrant,
)

REGION = "RegionOne"
IDENTITY_VERSION = "v3.14"
_UPDATED = "2020-04-07T00:00:00Z"
_INTERFACES = ("public", "internal", "admin")
_DOMAIN = {"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME}
_NAMESPACE = uuid.UUID("5b0a2c1e-4f0e-4d43-9d5e-0c6f3d1c0ffe")


def _stable_id(*parts: str) -> str:
    return uuid.uuid5(_NAMESPACE, "/".join(parts)).hex


def _timestamp(value: datetime) -> str:
    """Keystone's format: microseconds and a ``Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def version(base: str) -> dict[str, Any]:
    """The identity API's version document (``GET /v3``; also listed by ``GET /``)."""
    return {
        "id": IDENTITY_VERSION,
        "status": "stable",
        "updated": _UPDATED,
        "links": [{"rel": "self", "href": f"{base}/v3/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }


def _service(kind: str, name: str, url: str) -> dict[str, Any]:
    return {
        "id": _stable_id("service", kind),
        "type": kind,
        "name": name,
        "endpoints": [
            {
                "id": _stable_id("endpoint", kind, interface),
                "interface": interface,
                "region": REGION,
                "region_id": REGION,
                "url": url,
            }
            for interface in _INTERFACES
        ],
    }


def catalog(base: str, project_id: str) -> list[dict[str, Any]]:
    return [
        _service("database", "trove", f"{base}/v1.0/{project_id}"),
        _service("identity", "keystone", f"{base}/v3"),
    ]


def roles(is_admin: bool) -> list[dict[str, str]]:
    names = ["admin", "member", "reader"] if is_admin else ["member", "reader"]
    return [{"id": _stable_id("role", name), "name": name} for name in names]


def token(base: str, grant: TokenGrant) -> dict[str, Any]:
    """The ``{"token": ...}`` body of a login or a validation."""
    return {
        "token": {
            "methods": ["password"],
            "user": {
                "id": grant.user_id,
                "name": grant.user_name,
                "domain": _DOMAIN,
                "password_expires_at": None,
            },
            "audit_ids": [grant.audit_id],
            "issued_at": _timestamp(grant.issued_at),
            "expires_at": _timestamp(grant.expires_at),
            "project": {"id": grant.project_id, "name": grant.project_name, "domain": _DOMAIN},
            "is_domain": False,
            "roles": roles(grant.is_admin),
            "catalog": catalog(base, grant.project_id),
        }
    }


def project(base: str, view: ProjectView) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "domain_id": DEFAULT_DOMAIN_ID,
        "description": "",
        "enabled": True,
        "is_domain": False,
        "parent_id": DEFAULT_DOMAIN_ID,
        "tags": [],
        "links": {"self": f"{base}/v3/projects/{view.id}"},
    }
