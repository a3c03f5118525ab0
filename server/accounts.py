"""Routes for login, logout, password change, the current user, personal API tokens and (site
admins) users. Whatever takes access away announces it (``server.revocations``), so open sockets
are closed or downgraded as soon as the change commits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import _login_attempts as attempts
from server import revocations
from server._web import path_int, read_body, unit_of_work
from server.auth import COOKIE_NAME, hash_password_off_loop, new_api_token, verify_password_off_loop
from server.db import transaction
from server.errors import ApiError, forbidden, not_found
from server.limits import LOGIN_BODY_LIMIT
from server.models import ApiToken, User, utcnow
from server.schemas import (
    LoginIn,
    MePatch,
    PasswordChangeIn,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
    UserPatch,
)
from server.throttle import whole_seconds


def request_now(request: Request) -> datetime:
    # Tests may set app.state.clock to move time on without waiting.
    clock: Callable[[], datetime] = getattr(request.app.state, "clock", utcnow)
    return clock()


async def login(request: Request) -> Response:
    """Throttled per account and per address (server/throttle.py); the password is checked on
    the password threads, outside any transaction, and unknown accounts take as long."""
    body = await read_body(request, LoginIn, limit=LOGIN_BODY_LIMIT, anonymous=True)
    email = body.email.strip().lower()
    address = request.client.host if request.client else ""
    sessions = request.app.state.sessions
    async with transaction(sessions) as session:
        wait = await attempts.admit(session, email, address, request_now(request))
        user = None if wait else (
            await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
    if wait:
        raise ApiError(429, "rate_limited", "too many failed logins; try again later",
                       {"retry_after": whole_seconds(wait)},
                       headers={"Retry-After": str(whole_seconds(wait))})
    valid = await verify_password_off_loop(user.password_hash if user else None, body.password)
    if user is None or not user.is_active or not valid:
        raise ApiError(401, "bad_credentials", "wrong email or password")
    async with transaction(sessions) as session:
        await attempts.succeeded(session, email, address)
        # Read again: a logout, password change or deactivation may have happened meanwhile.
        user = await session.get(User, user.id, populate_existing=True)
        if user is None or not user.is_active:
            raise ApiError(401, "bad_credentials", "wrong email or password")
        response = logged_in(request, user)
    return response


def logged_in(request: Request, user: User) -> Response:
    """A fresh login token for ``user``, in the body and as the session cookie."""
    token = request.app.state.signer.issue(user)
    response = JSONResponse({"token": token, "user": UserOut.of(user).model_dump()})
    response.set_cookie(
        COOKIE_NAME, token, max_age=request.app.state.signer.ttl_seconds, httponly=True,
        samesite="strict", secure=request.url.scheme == "https", path="/",
    )
    return response


async def logout(request: Request) -> Response:
    async with unit_of_work(request) as (session, user):
        # Invalidates every login token this user holds (API tokens stay until revoked), and
        # closes every socket opened with one.
        user.token_version += 1
        await revocations.announce(session, user.id, None, "logout")
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


async def change_password(request: Request) -> Response:
    """Set a new password; every login token issued before stops working (and the sockets opened
    with them close). The response carries a fresh token and cookie for the caller."""
    body = await read_body(request, PasswordChangeIn)
    async with unit_of_work(request) as (session, user):
        # argon2 on the password threads, like login: never on the event loop.
        if not await verify_password_off_loop(user.password_hash, body.current):
            raise ApiError(403, "wrong_password", "the current password is wrong")
        user.password_hash = await hash_password_off_loop(body.new)
        user.token_version += 1
        await revocations.announce(session, user.id, None, "password")
        await session.flush()
        return logged_in(request, user)


async def me(request: Request) -> Response:
    async with unit_of_work(request) as (_session, user):
        return JSONResponse(UserOut.of(user).model_dump())


async def patch_me(request: Request) -> Response:
    body = await read_body(request, MePatch)
    async with unit_of_work(request) as (_session, user):
        user.name = body.name
        return JSONResponse(UserOut.of(user).model_dump())


async def list_tokens(request: Request) -> Response:
    async with unit_of_work(request) as (session, user):
        rows = (
            await session.execute(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
        ).scalars()
        return JSONResponse({"tokens": [TokenOut.of(t).model_dump(mode="json") for t in rows]})


async def create_token(request: Request) -> Response:
    body = await read_body(request, TokenIn)
    async with unit_of_work(request) as (session, user):
        token, prefix, digest = new_api_token()
        row = ApiToken(user_id=user.id, name=body.name, prefix=prefix, token_hash=digest)
        session.add(row)
        await session.flush()
        out: dict[str, Any] = TokenOut.of(row).model_dump(mode="json")
        out["token"] = token  # shown once; only the hash is kept
        return JSONResponse(out, status_code=201)


async def revoke_token(request: Request) -> Response:
    token_id = path_int(request, "token_id")
    async with unit_of_work(request) as (session, user):
        row = await session.get(ApiToken, token_id)
        if row is None or row.user_id != user.id:
            raise not_found("token")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            await revocations.announce(session, user.id, None, "token")
        return Response(status_code=204)


async def create_user_row(session: AsyncSession, body: UserIn) -> User:
    """Shared by the REST route, the CLI and the first-admin bootstrap."""
    user = User(email=body.email, name=body.name, password_hash=await hash_password_off_loop(body.password),
                is_admin=body.is_admin, settings={})
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise ApiError(409, "exists", f"a user with email {body.email} exists") from None
    return user


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise forbidden("only site admins manage users")


async def _admin_only(_session: AsyncSession, user: User) -> None:
    _require_admin(user)


async def list_users(request: Request) -> Response:
    async with unit_of_work(request) as (session, user):
        _require_admin(user)
        rows = (await session.execute(select(User).order_by(User.id))).scalars()
        return JSONResponse({"users": [UserOut.of(u).model_dump() for u in rows]})


async def create_user(request: Request) -> Response:
    body = await read_body(request, UserIn, _admin_only)
    async with unit_of_work(request) as (session, user):
        _require_admin(user)
        created = await create_user_row(session, body)
        return JSONResponse(UserOut.of(created).model_dump(), status_code=201)


async def patch_user(request: Request) -> Response:
    user_id = path_int(request, "user_id")
    body = await read_body(request, UserPatch, _admin_only)
    async with unit_of_work(request) as (session, user):
        _require_admin(user)
        target = await session.get(User, user_id)
        if target is None:
            raise not_found("user")
        if body.is_admin is False or body.is_active is False:
            await check_not_last_admin(session, target)
        if body.name is not None:
            target.name = body.name
        reason: revocations.Reason | None = None
        if body.password is not None:
            await reset_password(session, target, body.password, announce=False)
            reason = "password"
        if body.is_admin is not None:
            if target.is_admin and not body.is_admin:
                reason = reason or "admin"  # projects it is no member of are out of reach now
            target.is_admin = body.is_admin
        if body.is_active is not None:
            target.is_active = body.is_active
            target.token_version += 1
            if not body.is_active:
                reason = "deactivated"
        if reason is not None:
            await revocations.announce(session, target.id, None, reason)
        return JSONResponse(UserOut.of(target).model_dump())


async def check_not_last_admin(session: AsyncSession, target: User) -> None:
    """409 when demoting or deactivating ``target`` would leave no active site admin."""
    admins = (
        await session.execute(
            select(func.count()).select_from(User).where(User.is_admin, User.is_active)
        )
    ).scalar_one()
    if target.is_admin and target.is_active and admins <= 1:
        raise ApiError(409, "last_admin", "the last active site admin cannot be demoted")


async def reset_password(session: AsyncSession, target: User, password: str, *,
                         announce: bool = True) -> None:
    """Set a user's password (argon2 on the password threads) and end every login session of
    theirs: their login tokens stop working and their open sockets close."""
    target.password_hash = await hash_password_off_loop(password)
    target.token_version += 1
    if announce:
        await revocations.announce(session, target.id, None, "password")


async def set_active(session: AsyncSession, target: User, active: bool) -> None:
    """(De)activate an account; deactivating ends its sessions and closes its sockets."""
    if not active:
        await check_not_last_admin(session, target)
    target.is_active = active
    target.token_version += 1
    if not active:
        await revocations.announce(session, target.id, None, "deactivated")


routes = [
    Route("/api/v1/auth/login", login, methods=["POST"]),
    Route("/api/v1/auth/logout", logout, methods=["POST"]),
    Route("/api/v1/auth/password", change_password, methods=["POST"]),
    Route("/api/v1/me", me, methods=["GET"]),
    Route("/api/v1/me", patch_me, methods=["PATCH"]),
    Route("/api/v1/me/tokens", list_tokens, methods=["GET"]),
    Route("/api/v1/me/tokens", create_token, methods=["POST"]),
    Route("/api/v1/me/tokens/{token_id}", revoke_token, methods=["DELETE"]),
    Route("/api/v1/users", list_users, methods=["GET"]),
    Route("/api/v1/users", create_user, methods=["POST"]),
    Route("/api/v1/users/{user_id}", patch_user, methods=["PATCH"]),
]
