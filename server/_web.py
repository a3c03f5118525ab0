"""Small helpers every route uses: body parsing, the unit of work, project access checks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection, Request

from server.auth import authenticate
from server.db import transaction
from server.errors import ApiError, forbidden, not_found, validation_details
from server.models import Membership, Project, User
from server.permissions import Actor, Privilege, allowed

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, model: type[M]) -> M:
    """Parse a JSON body into ``model``: 400 on malformed JSON, 422 naming the bad field."""
    raw = await request.body()
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"request body is not valid JSON: {exc}") from None
    return parse_as(model, data)


def parse_as(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc)
        first = details[0]
        where = first["field"] or "body"
        raise ApiError(422, "invalid", f"{where}: {first['message']}", details) from None


MAX_ID = 2**31 - 1  # ids are 32-bit columns; larger numbers can name nothing


def path_int(request: HTTPConnection, name: str) -> int:
    try:
        value = int(request.path_params[name])
    except (KeyError, ValueError):
        raise ApiError(404, "not_found", f"bad {name} in path") from None
    if not 0 < value <= MAX_ID:
        raise ApiError(404, "not_found", f"no such {name.removesuffix('_id')}")
    return value


def query_int(request: HTTPConnection, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, "invalid", f"query parameter {name} must be an integer") from None
    if not lo <= value <= hi:
        raise ApiError(422, "invalid", f"query parameter {name} must be in [{lo}, {hi}]")
    return value


def query_bool(request: HTTPConnection, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ApiError(422, "invalid", f"query parameter {name} must be true or false")


@asynccontextmanager
async def unit_of_work(request: HTTPConnection) -> AsyncIterator[tuple[AsyncSession, User]]:
    """One transaction for the whole request, with the authenticated user."""
    async with transaction(request.app.state.sessions) as session:
        user = await authenticate(request, session)
        yield session, user


async def actor_for(session: AsyncSession, user: User, project_id: int) -> Actor:
    privileges = (
        await session.execute(
            select(Membership.privileges).where(
                Membership.project_id == project_id, Membership.user_id == user.id
            )
        )
    ).scalar_one_or_none()
    return Actor(user_id=user.id, is_admin=user.is_admin, privileges=privileges)


async def project_access(
    session: AsyncSession, user: User, project_id: int, needed: Privilege, *, lock: bool = False
) -> tuple[Project, Actor]:
    """Load a project the user may see and check one privilege: 404 if unseen, 403 if lacking."""
    stmt = select(Project).where(Project.id == project_id)
    if lock:
        stmt = stmt.with_for_update()
    project = (await session.execute(stmt)).scalar_one_or_none()
    if project is None:
        raise not_found("project")
    actor = await actor_for(session, user, project_id)
    if actor.privileges is None and not actor.is_admin:
        raise not_found("project")  # non-members do not learn that the project exists
    if not allowed(actor, needed):
        raise forbidden(f"this needs the '{needed.name.lower() if needed.name else needed}' privilege")
    return project, actor
