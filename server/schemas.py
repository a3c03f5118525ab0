"""Pydantic schemas for the REST API (request bodies and responses). ORM rows never go on the wire."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.models import ApiToken, Membership, Project, User
from server.permissions import PRESETS, to_names


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _email(value: str) -> str:
    value = value.strip().lower()
    local, _, domain = value.partition("@")
    if not local or not domain or " " in value or len(value) > 320:
        raise ValueError("not a valid email address")
    return value


def display_name(value: str) -> str:
    """A person's name as shown to others: trimmed, 1-200 characters, no control characters."""
    value = value.strip()
    if not value:
        raise ValueError("a name is required")
    if len(value) > 200:
        raise ValueError("a name has at most 200 characters")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise ValueError("a name cannot contain control characters or line breaks")
    return value


def _optional_name(value: str | None) -> str | None:
    return None if value is None else display_name(value)


def _known_role(value: str | None) -> str | None:
    if value is not None and value not in PRESETS:
        raise ValueError(f"unknown role; one of {', '.join(PRESETS)}")
    return value


class LoginIn(_In):
    email: str
    password: str = Field(min_length=1, max_length=1000)


class PasswordChangeIn(_In):
    current: str = Field(min_length=1, max_length=1000)
    new: str = Field(min_length=8, max_length=1000)


class UserIn(_In):
    email: str
    password: str = Field(min_length=8, max_length=1000)
    name: str
    is_admin: bool = False

    _check_email = field_validator("email")(_email)
    _check_name = field_validator("name")(display_name)


class UserPatch(_In):
    name: str | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1000)
    is_admin: bool | None = None
    is_active: bool | None = None

    _check_name = field_validator("name")(_optional_name)


class MePatch(_In):
    """What people change about themselves (the rest is a site admin's)."""

    name: str

    _check_name = field_validator("name")(display_name)


class InvitationIn(_In):
    """A site admin invites someone to make an account."""

    email: str
    name: str = Field(default="", max_length=200)  # a suggestion; the invitee chooses
    is_admin: bool = False

    _check_email = field_validator("email")(_email)


class InvitationAcceptIn(_In):
    name: str
    password: str = Field(min_length=8, max_length=1000)

    _check_name = field_validator("name")(display_name)


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    is_admin: bool
    is_active: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(id=user.id, email=user.email, name=user.name, is_admin=user.is_admin,
                   is_active=user.is_active)


class TokenIn(_In):
    name: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool

    @classmethod
    def of(cls, tok: ApiToken) -> TokenOut:
        return cls(id=tok.id, name=tok.name, prefix=tok.prefix, created_at=tok.created_at,
                   last_used_at=tok.last_used_at, revoked=tok.revoked_at is not None)


class ProjectIn(_In):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)


class ProjectPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)


class ProjectOut(BaseModel):
    id: int
    name: str
    description: str
    created_at: datetime
    seq: int
    role: str | None
    privileges: list[str]

    @classmethod
    def of(cls, project: Project, role: str | None, privileges: int) -> ProjectOut:
        return cls(id=project.id, name=project.name, description=project.description,
                   created_at=project.created_at, seq=project.seq, role=role,
                   privileges=to_names(privileges))


class MemberIn(_In):
    email: str
    role: str | None = None
    privileges: list[str] | None = None

    _check_email = field_validator("email")(_email)
    _check_role = field_validator("role")(_known_role)


class MemberPatch(_In):
    role: str | None = None
    privileges: list[str] | None = None

    _check_role = field_validator("role")(_known_role)


class MemberOut(BaseModel):
    user_id: int
    email: str | None  # only for those who manage members; others see names
    name: str
    role: str
    privileges: list[str]

    @classmethod
    def of(cls, m: Membership, user: User, *, with_email: bool = True) -> MemberOut:
        return cls(user_id=user.id, email=user.email if with_email else None, name=user.name,
                   role=m.role, privileges=to_names(m.privileges))


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None
