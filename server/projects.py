"""Routes for projects and their members.

Only owners (and site admins) grant or take away the owner role, and the last owner can be
neither removed nor demoted. Every change that can take access away announces it
(``server.revocations``), so the member's open sockets close or downgrade when it commits."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import revocations
from server._web import needs, path_int, project_access, read_body, unit_of_work
from server.ai.embeddings import forget_project
from server.edits import append
from server.errors import ApiError, invalid, not_found
from server.hub import leases
from server.invitations import invite_to_project
from server.models import Image, ImageLock, Membership, Project, User, utcnow
from server.permissions import (
    ALL,
    PRESETS,
    MemberRuleError,
    Privilege,
    allowed,
    check_member_change,
    check_owner_role,
    from_names,
    role_for,
)
from server.schemas import MemberIn, MemberOut, MemberPatch, ProjectIn, ProjectOut, ProjectPatch


async def create_project(request: Request) -> Response:
    body = await read_body(request, ProjectIn)
    async with unit_of_work(request) as (session, user):
        project = Project(name=body.name, description=body.description, created_by=user.id,
                          seq=0, settings={})
        session.add(project)
        await session.flush()
        session.add(Membership(project_id=project.id, user_id=user.id, role="owner",
                               privileges=int(ALL), settings={}))
        return JSONResponse(ProjectOut.of(project, "owner", int(ALL)).model_dump(mode="json"),
                            status_code=201)


async def list_projects(request: Request) -> Response:
    async with unit_of_work(request) as (session, user):
        rows = await session.execute(
            select(Project, Membership)
            .join(Membership, Membership.project_id == Project.id)
            .where(Membership.user_id == user.id, Membership.privileges.op("&")(int(Privilege.VIEW)) != 0)
            .order_by(Project.id)
        )
        items = [ProjectOut.of(p, m.role, m.privileges).model_dump(mode="json") for p, m in rows]
        return JSONResponse({"projects": items})


async def get_project(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        project, actor = await project_access(session, user, project_id, Privilege.VIEW)
        return JSONResponse(_project_out(project, actor.privileges, user.is_admin))


def _project_out(project: Project, privileges: int | None, is_admin: bool) -> dict[str, object]:
    effective = int(ALL) if is_admin else (privileges or 0)
    return ProjectOut.of(project, role_for(privileges) if privileges is not None else None,
                         effective).model_dump(mode="json")


async def patch_project(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, ProjectPatch, needs(project_id, Privilege.MANAGE_MEMBERS))
    async with unit_of_work(request) as (session, user):
        project, actor = await project_access(session, user, project_id, Privilege.MANAGE_MEMBERS)
        if body.name is not None:
            project.name = body.name
        if body.description is not None:
            project.description = body.description
        return JSONResponse(_project_out(project, actor.privileges, user.is_admin))


async def delete_project(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        project, _actor = await project_access(session, user, project_id, Privilege.MANAGE_MEMBERS)
        membership = await session.get(Membership, (project_id, user.id))
        if not user.is_admin and (membership is None or membership.role != "owner"):
            raise ApiError(403, "forbidden", "only an owner can delete a project")
        members = (await session.execute(select(Membership.user_id).where(
            Membership.project_id == project_id))).scalars().all()
        for member_id in members:  # their sockets on this project close
            await revocations.announce(session, member_id, project_id, "project_deleted")
        await forget_project(session, project_id)
        await session.delete(project)
        return Response(status_code=204)


def _privileges_of(role: str | None, names: list[str] | None) -> tuple[str, int]:
    if names is not None:
        try:
            flags = from_names(names)
        except KeyError as exc:
            raise invalid(f"unknown privilege {exc.args[0]!r}; one of "
                          f"{', '.join(n.name.lower() for n in Privilege if n.name)}") from None
        flags |= Privilege.VIEW if flags else Privilege(0)
        return role_for(int(flags)), int(flags)
    if role is None:
        raise invalid("give a role or a list of privileges")
    return role, int(PRESETS[role])


async def announce_member_change(session: AsyncSession, project_id: int, user_id: int,
                                 idle_limit: float) -> None:
    """Tell every process (through the op log) that a member's privileges changed; a member who
    may no longer label loses their image locks at once."""
    privileges = (await session.execute(select(Membership.privileges).where(
        Membership.project_id == project_id, Membership.user_id == user_id))).scalar_one_or_none()
    if not (privileges or 0) & Privilege.LABEL:
        held = (await session.execute(select(Image).join(ImageLock, ImageLock.image_id == Image.id)
                                      .where(ImageLock.project_id == project_id,
                                             ImageLock.holder_id == user_id))).scalars().all()
        for image in held:
            await leases.release_image(session, image, user_id=user_id, connection_id=None,
                                       now=utcnow(), idle_limit=idle_limit)
    await append(session, project_id=project_id, image_id=None, user_id=user_id, kind="members",
                 op={"kind": "members", "user_id": user_id}, inverse=None, client_op_id=None,
                 origin="members")
    await revocations.announce(session, user_id, project_id, "membership")


async def _check_owner_role(session: AsyncSession, user: User, project_id: int,
                            target_role: str | None, new_role: str | None) -> None:
    mine = await session.get(Membership, (project_id, user.id))
    try:
        check_owner_role(actor_is_owner=user.is_admin or (mine is not None and mine.role == "owner"),
                         target_role=target_role, new_role=new_role)
    except MemberRuleError as exc:
        raise ApiError(403, "forbidden", str(exc)) from None


async def _owner_count(session: AsyncSession, project_id: int) -> int:
    return (
        await session.execute(
            select(func.count()).select_from(Membership).where(
                Membership.project_id == project_id, Membership.role == "owner"
            )
        )
    ).scalar_one()


async def list_members(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        _project, actor = await project_access(session, user, project_id, Privilege.VIEW)
        with_email = allowed(actor, Privilege.MANAGE_MEMBERS)  # the rest see names only
        rows = await session.execute(
            select(Membership, User).join(User, User.id == Membership.user_id)
            .where(Membership.project_id == project_id).order_by(User.name, User.id)
        )
        return JSONResponse({"members": [MemberOut.of(m, u, with_email=with_email).model_dump()
                                         for m, u in rows]})


async def add_member(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, MemberIn, needs(project_id, Privilege.MANAGE_MEMBERS))
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.MANAGE_MEMBERS, lock=True)
        role, flags = _privileges_of(body.role, body.privileges)
        await _check_owner_role(session, user, project_id, None, role)
        target = (await session.execute(select(User).where(User.email == body.email))).scalar_one_or_none()
        # (Members are listed to everyone who may see the project: saying so reveals nothing.)
        if target is not None and await session.get(Membership, (project_id, target.id)) is not None:
            raise ApiError(409, "exists", f"{body.email} is already a member")
        if target is None or not user.is_admin:
            # F16: nobody joins without saying yes, and the answer is the same whether the
            # email has an account or not (server/invitations.py).
            invited = await invite_to_project(request, session, user, project_id, body.email,
                                              role, flags)
            return JSONResponse(invited, status_code=202)
        # Site admins see every account anyway, and put existing ones in at once.
        m = Membership(project_id=project_id, user_id=target.id, role=role, privileges=flags, settings={})
        session.add(m)
        await session.flush()
        return JSONResponse(MemberOut.of(m, target).model_dump(), status_code=201)


async def patch_member(request: Request) -> Response:
    project_id, user_id = path_int(request, "project_id"), path_int(request, "user_id")
    body = await read_body(request, MemberPatch, needs(project_id, Privilege.MANAGE_MEMBERS))
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.MANAGE_MEMBERS, lock=True)
        m = await session.get(Membership, (project_id, user_id))
        target = await session.get(User, user_id)
        if m is None or target is None:
            raise not_found("member")
        role, flags = _privileges_of(body.role, body.privileges)
        await _check_owner_role(session, user, project_id, m.role, role)
        try:
            check_member_change(target_role=m.role, new_role=role,
                                owner_count=await _owner_count(session, project_id), removing=False)
        except MemberRuleError as exc:
            raise ApiError(409, "last_owner", str(exc)) from None
        m.role, m.privileges = role, flags
        await announce_member_change(session, project_id, user_id,
                                     request.app.state.settings.idle_limit_seconds)
        return JSONResponse(MemberOut.of(m, target).model_dump())


async def remove_member(request: Request) -> Response:
    project_id, user_id = path_int(request, "project_id"), path_int(request, "user_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.MANAGE_MEMBERS, lock=True)
        m = await session.get(Membership, (project_id, user_id))
        if m is None:
            raise not_found("member")
        await _check_owner_role(session, user, project_id, m.role, None)
        try:
            check_member_change(target_role=m.role, new_role=None,
                                owner_count=await _owner_count(session, project_id), removing=True)
        except MemberRuleError as exc:
            raise ApiError(409, "last_owner", str(exc)) from None
        await session.delete(m)
        await announce_member_change(session, project_id, user_id,
                                     request.app.state.settings.idle_limit_seconds)
        return Response(status_code=204)


routes = [
    Route("/api/v1/projects", create_project, methods=["POST"]),
    Route("/api/v1/projects", list_projects, methods=["GET"]),
    Route("/api/v1/projects/{project_id}", get_project, methods=["GET"]),
    Route("/api/v1/projects/{project_id}", patch_project, methods=["PATCH"]),
    Route("/api/v1/projects/{project_id}", delete_project, methods=["DELETE"]),
    Route("/api/v1/projects/{project_id}/members", list_members, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/members", add_member, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/members/{user_id}", patch_member, methods=["PATCH"]),
    Route("/api/v1/projects/{project_id}/members/{user_id}", remove_member, methods=["DELETE"]),
]
