"""Invitations: to make an account (site admins, by link) and to join a project (its managers).

Nobody joins a project without saying yes, and a project manager never learns whether an email
has an account (F16): inviting answers the same for every email. The invitee accepts in the app
(``/api/v1/me/invitations``); an email without an account waits for a site admin, who sees the
waiting invitations and hands out an account link (``POST /api/v1/invitations``). Links are
one-time and expire (``LABELHUB_INVITATION_TTL_HOURS``); only a SHA-256 of the token is kept.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server._web import path_int, project_access, read_body, unit_of_work
from server.accounts import create_user_row, logged_in, request_now
from server.auth import authenticate, hash_api_token
from server.db import transaction
from server.errors import ApiError, forbidden, not_found
from server.limits import LOGIN_BODY_LIMIT
from server.models import Invitation, Membership, Project, User
from server.permissions import Privilege, to_names
from server.schemas import InvitationAcceptIn, InvitationIn, UserIn, UserOut

__all__ = ["invite_to_project", "routes"]


def _expiry(request: Request) -> datetime:
    return request_now(request) + timedelta(hours=request.app.state.settings.invitation_ttl_hours)


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, hash_api_token(token)


def _link(token: str) -> str:
    return f"/#/invite/{token}"


def _open(inv: Invitation, now: datetime) -> bool:
    return inv.accepted_at is None and inv.expires_at > now


async def _names(session: AsyncSession, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(select(User.id, User.name).where(User.id.in_(wanted)))
    return {uid: name for uid, name in rows}


async def invite_to_project(request: Request, session: AsyncSession, inviter: User,
                            project_id: int, email: str, role: str,
                            privileges: int) -> dict[str, Any]:
    """Invite ``email`` to a project; the same answer whether an account has that email or not.

    A pending invitation of the same email to the same project is renewed, not doubled. Site
    admins (who see every account anyway) also get a link that makes the account."""
    pending = (await session.execute(select(Invitation).where(
        Invitation.project_id == project_id, Invitation.email == email,
        Invitation.accepted_at.is_(None)).with_for_update())).scalars().all()
    for old in pending:
        await session.delete(old)
    token, digest = _new_token()
    inv = Invitation(token_hash=digest, email=email, name="", is_admin=False,
                     project_id=project_id, role=role, privileges=privileges,
                     invited_by=inviter.id, created_at=request_now(request), expires_at=_expiry(request))
    session.add(inv)
    await session.flush()
    out: dict[str, Any] = {"status": "invited", "email": email, "role": role,
                           "privileges": to_names(privileges),
                           "expires_at": inv.expires_at.isoformat()}
    if inviter.is_admin:
        out["link"] = _link(token)
    return out


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise forbidden("only site admins invite people to make an account")


async def _admin_only(_session: AsyncSession, user: User) -> None:
    _require_admin(user)


async def create_invitation(request: Request) -> Response:
    """A site admin's link to make an account (409 when the email has one already)."""
    body = await read_body(request, InvitationIn, _admin_only)
    async with unit_of_work(request) as (session, user):
        _require_admin(user)
        if (await session.execute(select(User.id).where(User.email == body.email))).first():
            raise ApiError(409, "exists", f"a user with email {body.email} exists")
        token, digest = _new_token()
        inv = Invitation(token_hash=digest, email=body.email, name=body.name,
                         is_admin=body.is_admin, invited_by=user.id, created_at=request_now(request),
                         expires_at=_expiry(request))
        session.add(inv)
        await session.flush()
        return JSONResponse({"id": inv.id, "email": inv.email, "link": _link(token),
                             "expires_at": inv.expires_at.isoformat()}, status_code=201)


async def list_invitations(request: Request) -> Response:
    """Site admins: every open invitation, saying which emails have no account yet."""
    async with unit_of_work(request) as (session, user):
        _require_admin(user)
        now = request_now(request)
        rows = (await session.execute(
            select(Invitation, Project.name, User.id)
            .outerjoin(Project, Project.id == Invitation.project_id)
            .outerjoin(User, User.email == Invitation.email)
            .where(Invitation.accepted_at.is_(None), Invitation.expires_at > now)
            .order_by(Invitation.id))).all()
        names = await _names(session, {inv.invited_by for inv, _, _ in rows})
        return JSONResponse({"invitations": [
            {"id": inv.id, "email": inv.email, "name": inv.name, "is_admin": inv.is_admin,
             "project_id": inv.project_id, "project_name": project_name, "role": inv.role,
             "has_account": account is not None,
             "invited_by": names.get(inv.invited_by) if inv.invited_by else None,
             "expires_at": inv.expires_at.isoformat()}
            for inv, project_name, account in rows]})


async def withdraw_invitation(request: Request) -> Response:
    invitation_id = path_int(request, "invitation_id")
    async with unit_of_work(request) as (session, user):
        inv = await session.get(Invitation, invitation_id)
        if inv is None:
            raise not_found("invitation")
        if inv.project_id is None:
            _require_admin(user)
        else:
            await project_access(session, user, inv.project_id, Privilege.MANAGE_MEMBERS)
        await session.delete(inv)
        return Response(status_code=204)


async def project_invitations(request: Request) -> Response:
    """A project's open invitations (manage_members): emails only the manager typed in."""
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.MANAGE_MEMBERS)
        rows = (await session.execute(select(Invitation).where(
            Invitation.project_id == project_id, Invitation.accepted_at.is_(None),
            Invitation.expires_at > request_now(request)).order_by(Invitation.id))).scalars().all()
        names = await _names(session, {inv.invited_by for inv in rows})
        return JSONResponse({"invitations": [
            {"id": inv.id, "email": inv.email, "role": inv.role,
             "privileges": to_names(inv.privileges or 0),
             "invited_by": names.get(inv.invited_by) if inv.invited_by else None,
             "expires_at": inv.expires_at.isoformat()} for inv in rows]})


async def _by_token(session: AsyncSession, token: str, now: datetime, *,
                    lock: bool = False) -> Invitation:
    stmt = select(Invitation).where(Invitation.token_hash == hash_api_token(token))
    inv = (await session.execute(stmt.with_for_update() if lock else stmt)).scalar_one_or_none()
    if inv is None or not _open(inv, now):
        raise ApiError(404, "not_found", "this invitation does not exist, was used or has expired")
    return inv


async def show_invitation(request: Request) -> Response:
    """Anonymous: what the link invites to (404 once used or expired)."""
    async with transaction(request.app.state.sessions) as session:
        inv = await _by_token(session, request.path_params["token"], request_now(request))
        project = await session.get(Project, inv.project_id) if inv.project_id else None
        names = await _names(session, {inv.invited_by})
        return JSONResponse({"email": inv.email, "name": inv.name,
                             "project": project.name if project else None,
                             "invited_by": names.get(inv.invited_by) if inv.invited_by else None,
                             "expires_at": inv.expires_at.isoformat()})


async def _inviter_still_may(session: AsyncSession, inv: Invitation) -> bool:
    """An invitation to a project holds only while its sender may still give that role (a
    manager removed meanwhile, or deactivated, cannot bring people in any more)."""
    inviter = await session.get(User, inv.invited_by) if inv.invited_by else None
    if inviter is None or not inviter.is_active:
        return False
    if inviter.is_admin:
        return True
    assert inv.project_id is not None
    theirs = await session.get(Membership, (inv.project_id, inviter.id))
    return theirs is not None and bool(theirs.privileges & Privilege.MANAGE_MEMBERS) and (
        inv.role != "owner" or theirs.role == "owner")


async def _join(session: AsyncSession, inv: Invitation, user: User) -> None:
    if inv.project_id is None:
        return
    if not await _inviter_still_may(session, inv):
        raise ApiError(404, "not_found", "this invitation is no longer valid: whoever sent it "
                       "may no longer add members")
    if await session.get(Membership, (inv.project_id, user.id)) is not None:
        return  # a member already (a site admin added them meanwhile)
    session.add(Membership(project_id=inv.project_id, user_id=user.id, role=inv.role or "viewer",
                           privileges=inv.privileges or 0, settings={}))


async def accept_by_link(request: Request) -> Response:
    """Anonymous: make the account the link invites (and join its project), then log in. When
    the account exists already, its owner must be logged in; the link then only joins."""
    token = request.path_params["token"]
    body = await read_body(request, InvitationAcceptIn, anonymous=True, limit=LOGIN_BODY_LIMIT)
    sessions = request.app.state.sessions
    async with transaction(sessions) as session:  # before any hashing: a bad link costs nothing
        await _by_token(session, token, request_now(request))
    async with transaction(sessions) as session:
        inv = await _by_token(session, token, request_now(request), lock=True)
        existing = (await session.execute(
            select(User).where(User.email == inv.email))).scalar_one_or_none()
        if existing is not None:
            try:
                caller = await authenticate(request, session)
            except ApiError:
                caller = None
            if caller is None or caller.id != existing.id:
                raise ApiError(409, "exists", f"{inv.email} has an account: log in as "
                               "that account, then open the link again")
            await _join(session, inv, existing)
            inv.accepted_at = request_now(request)
            return JSONResponse({"user": UserOut.of(existing).model_dump()})
        user = await create_user_row(session, UserIn(email=inv.email, password=body.password,
                                                     name=body.name, is_admin=inv.is_admin))
        await _join(session, inv, user)
        inv.accepted_at = request_now(request)
        await session.flush()
        return logged_in(request, user)


async def my_invitations(request: Request) -> Response:
    """The open invitations to projects for the logged-in account's email."""
    async with unit_of_work(request) as (session, user):
        rows = (await session.execute(
            select(Invitation, Project.name).join(Project, Project.id == Invitation.project_id)
            .where(Invitation.email == user.email, Invitation.accepted_at.is_(None),
                   Invitation.expires_at > request_now(request)).order_by(Invitation.id))).all()
        names = await _names(session, {inv.invited_by for inv, _ in rows})
        return JSONResponse({"invitations": [
            {"id": inv.id, "project_id": inv.project_id, "project_name": project_name,
             "role": inv.role, "invited_by": names.get(inv.invited_by) if inv.invited_by else None,
             "expires_at": inv.expires_at.isoformat()} for inv, project_name in rows]})


async def _mine(session: AsyncSession, request: Request, user: User) -> Invitation:
    invitation_id = path_int(request, "invitation_id")
    inv = (await session.execute(select(Invitation).where(
        Invitation.id == invitation_id).with_for_update())).scalar_one_or_none()
    if inv is None or inv.email != user.email or inv.project_id is None \
            or not _open(inv, request_now(request)):
        raise not_found("invitation")
    return inv


async def accept_mine(request: Request) -> Response:
    async with unit_of_work(request) as (session, user):
        inv = await _mine(session, request, user)
        await _join(session, inv, user)
        inv.accepted_at = request_now(request)
        return JSONResponse({"project_id": inv.project_id})


async def decline_mine(request: Request) -> Response:
    async with unit_of_work(request) as (session, user):
        inv = await _mine(session, request, user)
        await session.execute(delete(Invitation).where(Invitation.id == inv.id))
        return Response(status_code=204)


routes = [
    Route("/api/v1/invitations", list_invitations, methods=["GET"]),
    Route("/api/v1/invitations", create_invitation, methods=["POST"]),
    Route("/api/v1/invitations/{invitation_id:int}", withdraw_invitation, methods=["DELETE"]),
    Route("/api/v1/invitations/{token}", show_invitation, methods=["GET"]),
    Route("/api/v1/invitations/{token}/accept", accept_by_link, methods=["POST"]),
    Route("/api/v1/me/invitations", my_invitations, methods=["GET"]),
    Route("/api/v1/me/invitations/{invitation_id}/accept", accept_mine, methods=["POST"]),
    Route("/api/v1/me/invitations/{invitation_id}", decline_mine, methods=["DELETE"]),
    Route("/api/v1/projects/{project_id}/invitations", project_invitations, methods=["GET"]),
]
