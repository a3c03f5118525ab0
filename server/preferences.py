"""Labeling settings: defaults, validation, the project/user merge, and their routes.

Where a value comes from, lowest first: the defaults below < ``Project.settings`` < the user's
own ``User.settings`` < the user's per-project ``Membership.settings``. Users may only set the
per-user keys (:data:`USER_KEYS`); every other key is project-wide and needs ``manage_labels``.
Label shortcuts live on the label definitions (``LabelDef.shortcut``) and are shown here as
``label_shortcuts`` ({"1": "cat", ...}); PATCHing them reassigns the digits.

The server enforces: geometry policy (:func:`geometry_policy`: aspect ratio, outside/fit,
simplification), undo depth, label sync, import override; the hub reads the skip rules.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server._web import (
    needs,
    parse_as,
    path_int,
    project_access,
    query_id,
    read_body,
    unit_of_work,
)
from server.errors import ApiError, invalid, not_found
from server.geometry import Policy
from server.models import LabelDef, Membership, Project, User
from server.permissions import Privilege


class LabelingSettings(BaseModel):
    """Every labeling setting with its default."""

    model_config = ConfigDict(extra="forbid")

    override_labels_on_import: bool = False  # replace (True) or merge (False) on JSON/CSV import
    use_previous_label_name: bool = True
    synchronize_labels: bool = False
    fixed_bbox_aspect_ratio: float | None = Field(default=None, gt=0, le=1000)
    allow_labeling_outside_image: bool = False
    fit_labels_to_image: bool = False
    skip_other_users_images: bool = False
    skip_images_being_labeled: bool = True
    simplify_polygons: bool = False
    simplify_tolerance: float = Field(default=1.0, ge=0, le=100)
    undo_history_length: int = Field(default=100, ge=1, le=1000)
    disable_smoothing_when_zoomed: bool = False
    # Auto-retrain (server/ai/retrain.py): a new version of the newest trained model after this
    # many images got new human labels since its last training; None: never.
    retrain_after_images: int | None = Field(default=None, ge=1, le=100_000)


_policies: dict[tuple[int, int, int], tuple[LabelingSettings, Policy]] = {}


def geometry_policy(settings: LabelingSettings, width: int, height: int) -> Policy:
    """The geometry policy of an image under ``settings``, kept per settings object (merged
    settings are themselves kept by ``server.hub._context.SettingsCache``, so a labeler's
    edits share one instead of dumping the settings for every op)."""
    key = (id(settings), width, height)
    hit = _policies.get(key)
    if hit is not None and hit[0] is settings:  # the entry keeps it alive: its id is not reused
        return hit[1]
    if len(_policies) >= 512:
        _policies.clear()
    policy = Policy.from_settings(settings.model_dump(), width, height)
    _policies[key] = (settings, policy)
    return policy


#: Keys a user may set for themself (globally or per project).
USER_KEYS: frozenset[str] = frozenset({
    "use_previous_label_name", "skip_other_users_images", "skip_images_being_labeled",
    "disable_smoothing_when_zoomed",
})
DEFAULTS = LabelingSettings()


def merge(*layers: dict[str, Any] | None) -> LabelingSettings:
    """Defaults overlaid with each layer in turn; unknown or invalid stored keys are ignored."""
    values = DEFAULTS.model_dump()
    for layer in layers:
        for key, value in (layer or {}).items():
            if key in values:
                candidate = {**values, key: value}
                try:
                    LabelingSettings.model_validate(candidate)
                except ValidationError:
                    continue  # a stale stored value never breaks reading
                values = candidate
    return LabelingSettings.model_validate(values)


def project_layer(project: Project) -> LabelingSettings:
    return merge(project.settings)


async def effective_settings(session: AsyncSession, project_id: int, user_id: int | None) -> LabelingSettings:
    """The settings in force for this user in this project (project-only keys from the project)."""
    project = await session.get(Project, project_id)
    if project is None:
        raise not_found("project")
    user_layer: dict[str, Any] | None = None
    member_layer: dict[str, Any] | None = None
    if user_id is not None:
        user = await session.get(User, user_id)
        member = await session.get(Membership, (project_id, user_id))
        user_layer, member_layer = (user.settings if user else None), (member.settings if member else None)
    return merge_layers(project.settings, user_layer, member_layer)


def merge_layers(project: dict[str, Any] | None, user: dict[str, Any] | None,
                 member: dict[str, Any] | None) -> LabelingSettings:
    """Stored layers to the settings in force: the project's, then the user's own and their
    per-project overrides (only keys a user may set count from those two)."""
    return merge(project, _user_keys(user), _user_keys(member))


def _user_keys(layer: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (layer or {}).items() if k in USER_KEYS}


class _Patch(BaseModel):
    """Any JSON object; keys are checked one by one in :func:`_validated_patch`."""

    model_config = ConfigDict(extra="allow")


def _validated_patch(data: Any, allowed: frozenset[str] | None) -> dict[str, Any]:
    """A partial settings dict: known keys, valid values; ``None`` removes an override."""
    if not isinstance(data, dict):
        raise invalid("body: must be an object of settings")
    fields = LabelingSettings.model_fields
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise invalid(f"{key}: unknown setting", [{"field": key, "message": "unknown setting"}])
        if allowed is not None and key not in allowed:
            raise ApiError(422, "invalid", f"{key}: a project-wide setting; set it on the project",
                           [{"field": key, "message": "not a per-user setting"}])
        if value is None and fields[key].default is not None:
            out[key] = None
            continue
        parse_as(LabelingSettings, {key: value})
        out[key] = value
    return out


def _apply(stored: dict[str, Any] | None, patch: dict[str, Any]) -> dict[str, Any]:
    result = dict(stored or {})
    for key, value in patch.items():
        if value is None and LabelingSettings.model_fields[key].default is not None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


async def label_shortcuts(session: AsyncSession, project_id: int) -> dict[str, str]:
    rows = await session.execute(
        select(LabelDef.shortcut, LabelDef.name)
        .where(LabelDef.project_id == project_id, LabelDef.shortcut.is_not(None))
        .order_by(LabelDef.shortcut)
    )
    return {str(k): name for k, name in rows}


class _Shortcuts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label_shortcuts: dict[str, str | None]


async def set_shortcuts(session: AsyncSession, project_id: int, mapping: dict[str, str | None]) -> None:
    """Assign digits 1-9 to labels by name ({"1": "cat", "2": null}); a digit moves if taken."""
    for digit, name in mapping.items():
        if digit not in {str(d) for d in range(1, 10)}:
            raise invalid(f"label_shortcuts.{digit}: keys are the digits 1-9")
        await session.execute(update(LabelDef).where(LabelDef.project_id == project_id,
                                                     LabelDef.shortcut == int(digit)).values(shortcut=None))
        if name is None:
            continue
        row = (await session.execute(select(LabelDef).where(
            LabelDef.project_id == project_id, LabelDef.name == name))).scalar_one_or_none()
        if row is None:
            raise invalid(f"label_shortcuts.{digit}: no label named {name!r}")
        row.shortcut = int(digit)
        await session.flush()


async def _project_view(session: AsyncSession, project: Project, user_id: int) -> dict[str, Any]:
    shortcuts = await label_shortcuts(session, project.id)
    return {
        "project": {**project_layer(project).model_dump(), "label_shortcuts": shortcuts},
        "effective": {**(await effective_settings(session, project.id, user_id)).model_dump(),
                      "label_shortcuts": shortcuts},
        "user_keys": sorted(USER_KEYS),
    }


async def get_project_settings(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        project, _ = await project_access(session, user, project_id, Privilege.VIEW)
        return JSONResponse(await _project_view(session, project, user.id))


async def patch_project_settings(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    data = await read_body(request, _Patch, needs(project_id, Privilege.MANAGE_LABELS))
    raw = data.model_dump()
    shortcuts = raw.pop("label_shortcuts", None)
    patch = _validated_patch(raw, None)
    async with unit_of_work(request) as (session, user):
        project, _ = await project_access(session, user, project_id, Privilege.MANAGE_LABELS, lock=True)
        merged = _apply(project.settings, patch)
        parse_as(LabelingSettings, {**DEFAULTS.model_dump(), **merged})
        project.settings = merged
        if shortcuts is not None:
            await set_shortcuts(session, project_id, parse_as(_Shortcuts, {"label_shortcuts": shortcuts}).label_shortcuts)
        return JSONResponse(await _project_view(session, project, user.id))


async def _me_view(session: AsyncSession, user: User, project_id: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"user": _user_keys(user.settings), "user_keys": sorted(USER_KEYS)}
    if project_id is None:
        out["effective"] = merge(_user_keys(user.settings)).model_dump()
        return out
    member = await session.get(Membership, (project_id, user.id))
    out["project"] = _user_keys(member.settings if member else None)
    out["effective"] = (await effective_settings(session, project_id, user.id)).model_dump()
    return out


async def get_my_settings(request: Request) -> Response:
    project_id = query_id(request, "project")
    async with unit_of_work(request) as (session, user):
        if project_id is not None:
            await project_access(session, user, project_id, Privilege.VIEW)
        return JSONResponse(await _me_view(session, user, project_id))


async def patch_my_settings(request: Request) -> Response:
    project_id = query_id(request, "project")
    data = await read_body(request, _Patch, None if project_id is None else needs(project_id, Privilege.VIEW))
    patch = _validated_patch(data.model_dump(), USER_KEYS)
    async with unit_of_work(request) as (session, user):
        if project_id is None:
            user.settings = _apply(user.settings, patch)
        else:
            await project_access(session, user, project_id, Privilege.VIEW)
            member = await session.get(Membership, (project_id, user.id))
            if member is None:  # a site admin who is not a member keeps the override on the user
                raise ApiError(409, "not_member", "per-project settings need a membership; "
                               "omit ?project= to set them for all projects")
            member.settings = _apply(member.settings, patch)
        return JSONResponse(await _me_view(session, user, project_id))


routes = [
    Route("/api/v1/projects/{project_id}/settings", get_project_settings, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/settings", patch_project_settings, methods=["PATCH"]),
    Route("/api/v1/me/settings", get_my_settings, methods=["GET"]),
    Route("/api/v1/me/settings", patch_my_settings, methods=["PATCH"]),
]
