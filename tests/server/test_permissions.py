from __future__ import annotations

import pytest

from server.permissions import (
    ALL,
    PRESETS,
    Actor,
    MemberRuleError,
    Privilege,
    allowed,
    check_member_change,
    check_owner_role,
    from_names,
    role_for,
    to_names,
)


def test_presets_match_the_product() -> None:
    assert PRESETS["owner"] == PRESETS["manager"] == ALL
    assert to_names(PRESETS["supervisor"]) == ["view", "review", "import_export", "view_stats"]
    assert to_names(PRESETS["labeler"]) == ["view", "label"]
    assert to_names(PRESETS["viewer"]) == ["view"]


@pytest.mark.parametrize("flag", list(Privilege))
def test_each_flag_is_needed_and_sufficient(flag: Privilege) -> None:
    with_flag = Actor(user_id=1, is_admin=False, privileges=int(Privilege.VIEW | flag))
    without = Actor(user_id=1, is_admin=False, privileges=int(ALL & ~flag | Privilege.VIEW))
    assert allowed(with_flag, flag)
    if flag != Privilege.VIEW:
        assert not allowed(without, flag)


def test_non_members_and_admins() -> None:
    assert not allowed(Actor(1, False, None), Privilege.VIEW)
    assert allowed(Actor(1, True, None), Privilege.MANAGE_MEMBERS)
    # Flags without view grant nothing.
    assert not allowed(Actor(1, False, int(Privilege.LABEL)), Privilege.LABEL)


def test_names_roundtrip_and_roles() -> None:
    assert from_names(["view", "label"]) == PRESETS["labeler"]
    with pytest.raises(KeyError):
        from_names(["fly"])
    assert role_for(int(PRESETS["viewer"])) == "viewer"
    assert role_for(int(Privilege.VIEW | Privilege.UPLOAD)) == "custom"


def test_last_owner_rules() -> None:
    with pytest.raises(MemberRuleError):
        check_member_change(target_role="owner", new_role=None, owner_count=1, removing=True)
    with pytest.raises(MemberRuleError):
        check_member_change(target_role="owner", new_role="manager", owner_count=1, removing=False)
    check_member_change(target_role="owner", new_role="manager", owner_count=2, removing=False)
    check_member_change(target_role="labeler", new_role=None, owner_count=1, removing=True)


def test_only_owners_grant_or_take_away_the_owner_role() -> None:
    for target, new in (("manager", "owner"), (None, "owner"), ("owner", "manager"),
                        ("owner", None)):
        with pytest.raises(MemberRuleError):
            check_owner_role(actor_is_owner=False, target_role=target, new_role=new)
        check_owner_role(actor_is_owner=True, target_role=target, new_role=new)
    for target, new in (("labeler", "manager"), (None, "viewer"), ("manager", None),
                        ("owner", "owner")):
        check_owner_role(actor_is_owner=False, target_role=target, new_role=new)
