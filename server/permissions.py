"""Who may do what: one pure function decides every permission.

No I/O here. Routes and the socket hub load the membership, then ask :func:`allowed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag


class Privilege(IntFlag):
    VIEW = 1
    LABEL = 2
    REVIEW = 4
    UPLOAD = 8
    DELETE = 16
    MANAGE_LABELS = 32
    IMPORT_EXPORT = 64
    VIEW_STATS = 128
    MANAGE_MEMBERS = 256


ALL = Privilege(sum(Privilege))

PRESETS: dict[str, Privilege] = {
    "owner": ALL,
    "manager": ALL,
    "supervisor": Privilege.VIEW | Privilege.REVIEW | Privilege.VIEW_STATS | Privilege.IMPORT_EXPORT,
    "labeler": Privilege.VIEW | Privilege.LABEL,
    "viewer": Privilege.VIEW,
}

FLAG_NAMES: dict[str, Privilege] = {p.name.lower(): p for p in Privilege if p.name}


def to_names(privileges: int) -> list[str]:
    """Flag names in declaration order, e.g. ``["view", "label"]``."""
    return [name for name, flag in FLAG_NAMES.items() if privileges & flag]


def from_names(names: list[str]) -> Privilege:
    """Parse flag names; raises ``KeyError`` naming the first unknown one."""
    result = Privilege(0)
    for name in names:
        result |= FLAG_NAMES[name]
    return result


def role_for(privileges: int) -> str:
    """The preset name matching these flags exactly (``owner`` only when given), else ``custom``."""
    for name, flags in PRESETS.items():
        if name != "owner" and flags == privileges:
            return name
    return "custom"


@dataclass(frozen=True)
class Actor:
    """What the rules need to know about whoever asks."""

    user_id: int
    is_admin: bool
    privileges: int | None  # None: not a member of the project


def allowed(actor: Actor, needed: Privilege) -> bool:
    """The single permission decision. Site admins hold every privilege in every project."""
    if actor.is_admin:
        return True
    if actor.privileges is None:
        return False
    # A member must at least see the project for any other flag to count.
    if not actor.privileges & Privilege.VIEW:
        return False
    return (actor.privileges & needed) == needed


def is_member_visible(actor: Actor) -> bool:
    return allowed(actor, Privilege.VIEW)


class MemberRuleError(ValueError):
    """A membership change that would break a rule (e.g. leave a project without an owner)."""


def check_member_change(
    *, target_role: str, new_role: str | None, owner_count: int, removing: bool
) -> None:
    """The last owner can be neither removed nor demoted."""
    if target_role != "owner" or owner_count > 1:
        return
    if removing:
        raise MemberRuleError("the last owner of a project cannot be removed")
    if new_role is not None and new_role != "owner":
        raise MemberRuleError("the last owner of a project cannot be demoted")


def check_owner_role(*, actor_is_owner: bool, target_role: str | None,
                     new_role: str | None) -> None:
    """Only an owner (or a site admin) grants the owner role or takes it away, removal included:
    a manager may manage members, but not make themselves owner and then unseat the owners.
    ``target_role`` is None for a new member, ``new_role`` None for a removal."""
    if "owner" in (target_role, new_role) and target_role != new_role and not actor_is_owner:
        raise MemberRuleError("only an owner can grant or take away the owner role")
