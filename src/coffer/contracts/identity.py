"""Request bodies of the Keystone v3 subset (password login) and of login users (mgmt).

Keystone's auth body as keystoneauth's v3 password plugin sends it::

    {"auth": {"identity": {"methods": ["password"],
                           "password": {"user": {"name": "u", "domain": {"name": "Default"},
                                                 "password": "..."}}},
              "scope": {"project": {"name": "p", "domain": {"name": "Default"}}}}}

The user may be given by ``id`` instead of name and domain, the project by ``id``.
Models check shape only; whether the names exist is the identity service's business.
Unknown keys are refused.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Ref = Annotated[str, StringConstraints(min_length=1, max_length=255)]
#: what a login may carry (scrypt takes any length; this bounds the work per request)
LoginPassword = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
#: what a new user's password must be
NewPassword = Annotated[str, StringConstraints(min_length=8, max_length=255)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DomainRef(_Body):
    id: Ref | None = None
    name: Ref | None = None


class _NamedInDomain(_Body):
    """Given by ``id``, or by ``name`` (with its ``domain``, Default when left out)."""

    id: Ref | None = None
    name: Ref | None = None
    domain: DomainRef | None = None

    @model_validator(mode="after")
    def _id_or_name(self) -> _NamedInDomain:
        if self.id is None and self.name is None:
            raise ValueError("needs an id or a name")
        return self


class PasswordUser(_NamedInDomain):
    password: LoginPassword = Field(repr=False)


class PasswordMethod(_Body):
    user: PasswordUser


class Identity(_Body):
    methods: Annotated[list[str], Field(min_length=1)]
    password: PasswordMethod | None = None


class ProjectScope(_NamedInDomain):
    pass


class Scope(_Body):
    project: ProjectScope


class Auth(_Body):
    identity: Identity
    #: no scope: the token is for the user's own project (Keystone's default project)
    scope: Scope | None = None


class AuthRequest(_Body):
    auth: Auth


class LoginUserIn(_Body):
    name: Ref
    password: NewPassword = Field(repr=False)
    #: the project's name or id
    project: Ref


class LoginUserBody(_Body):
    user: LoginUserIn
