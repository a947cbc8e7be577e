"""The permission matrix, through the services: each role × each action × a target inside or
outside the user's subtree (docs/architecture.md has the table).

Notices are brought to the state each action needs by two "operator" users who hold editor and
reviewer rights over two whole counties, so that the user under test only does the one action.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from flask_babel import gettext as _

from server.extensions import db
from server.models import Notice, NoticeStatus, Region, Role, User
from server.services import feedback, notices
from server.services import regions as region_service
from server.services import users as user_service
from server.services.errors import PermissionDenied, ValidationError
from server.services.notices import NoticeInput
from tests.conftest import PASSWORD, World

ROLES = [
    "admin",
    "county_editor",
    "county_reviewer",
    "town_editor",
    "town_reviewer",
    "village_editor",
    "village_reviewer",
    "nobody",
]
ACTIONS = ["create", "edit", "submit", "approve", "reject", "publish", "withdraw", "answer", "view"]
EDITOR_ACTIONS = {"create", "edit", "submit", "publish", "withdraw", "answer", "view"}
REVIEWER_ACTIONS = {"approve", "reject", "publish", "withdraw", "view"}

# Region codes (see World and the `county` fixture): inside and outside each role's subtree.
INSIDE = "V11"  # 前王庄村: inside the county, the town 柳河镇 and the village itself
OUTSIDE = {
    "admin": "X11",  # a village of the neighbouring county
    "county_editor": "X11",
    "county_reviewer": "X11",
    "town_editor": "V21",  # a village of the other town
    "town_reviewer": "V21",
    "village_editor": "V12",  # the neighbouring village
    "village_reviewer": "V12",
    "nobody": "X11",
}


def allowed(role: str, action: str) -> bool:
    """The rule under test, written out: what each role may do inside its subtree."""
    if role == "admin":
        return True
    if role.endswith("_editor"):
        return action in EDITOR_ACTIONS
    if role.endswith("_reviewer"):
        return action in REVIEWER_ACTIONS
    return False


def data(targets: list[str], **kw: object) -> NoticeInput:
    fields: dict[str, object] = {
        "title": "关于召开村民代表会议的通知",
        "body": "定于本周六上午九点在村委会召开。",
        "category": "village",
        "targets": targets,
    }
    fields.update(kw)
    return NoticeInput(**fields)  # type: ignore[arg-type]


@dataclass
class Operators:
    """Users that bring notices to a state, with rights over both counties."""

    editor: User
    reviewer: User

    def notice(self, target: str, state: str) -> Notice:
        n = notices.create(self.editor, data([target]))
        if state == "draft":
            return n
        notices.submit(self.editor, n)
        if state == "submitted":
            return n
        notices.approve(self.reviewer, n)
        if state == "approved":
            return n
        notices.publish(self.editor, n)
        assert state == "published"
        return n


@pytest.fixture
def ops(world: World) -> Operators:
    neighbour = region_service.create(None, "X0", "邻县")
    region_service.create(None, "X11", "邻村", neighbour)
    grants = [world.county, neighbour]
    editor = user_service.create(
        None, "op_editor", PASSWORD, grants=[(Role.EDITOR, r) for r in grants]
    )
    reviewer = user_service.create(
        None, "op_reviewer", PASSWORD, grants=[(Role.REVIEWER, r) for r in grants]
    )
    return Operators(editor, reviewer)


def _snapshot(n: Notice) -> tuple[object, ...]:
    db.session.expire_all()
    rev = n.current
    return (n.status, rev.number, rev.state, rev.title, rev.body, [r.code for r in rev.targets])


# Each action: (state the notice must be in, do it, check that it was done).
Act = Callable[[User, Notice, str], object]


def _create(user: User, _n: Notice, target: str) -> object:
    created = notices.create(user, data([target], title="新通知"))
    assert created.status == NoticeStatus.DRAFT and created.current.title == "新通知"
    return created


def _edit(user: User, n: Notice, target: str) -> object:
    rev = notices.update(user, n, data([target], title="改过的标题"))
    assert rev.title == "改过的标题"
    return rev


def _submit(user: User, n: Notice, _t: str) -> object:
    notices.submit(user, n)
    assert n.status == NoticeStatus.SUBMITTED
    return n


def _approve(user: User, n: Notice, _t: str) -> object:
    notices.approve(user, n)
    assert n.status == NoticeStatus.APPROVED
    return n


def _reject(user: User, n: Notice, _t: str) -> object:
    rev = notices.reject(user, n, "数字有误，请核对")
    assert n.status == NoticeStatus.DRAFT and rev.reject_reason == "数字有误，请核对"
    return n


def _publish(user: User, n: Notice, _t: str) -> object:
    notices.publish(user, n)
    assert n.status == NoticeStatus.PUBLISHED
    return n


def _withdraw(user: User, n: Notice, _t: str) -> object:
    notices.withdraw(user, n, "内容有误")
    assert n.status == NoticeStatus.WITHDRAWN
    return n


def _answer(user: User, n: Notice, _t: str) -> object:
    item = feedback.submit(n, body="这个月电费为什么这么高？")
    assert feedback.counts_for(n) == {"open": 1}
    feedback.answer(user, item, "已核实，是路灯改造的电费。")
    assert item.status == "answered" and item.answered_by_id == user.id
    assert [f.id for f in feedback.public_for(n)] == [item.id]
    return item


ACT: dict[str, tuple[str, Act]] = {
    "create": ("draft", _create),
    "edit": ("draft", _edit),
    "submit": ("draft", _submit),
    "approve": ("submitted", _approve),
    "reject": ("submitted", _reject),
    "publish": ("approved", _publish),
    "withdraw": ("published", _withdraw),
    "answer": ("published", _answer),
}


@pytest.mark.parametrize("where", ["inside", "outside"])
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("role", ROLES)
def test_matrix(world: World, ops: Operators, role: str, action: str, where: str) -> None:
    user: User = getattr(world, role)
    target = INSIDE if where == "inside" else OUTSIDE[role]
    expect = where == "inside" and allowed(role, action)

    if action == "view":
        n = ops.notice(target, "draft")
        assert notices.can(user, "view", n) is expect
        listed, _total = notices.list_notices(user)
        assert (n in listed) is expect
        return

    state, act = ACT[action]
    n = ops.notice(target, state)
    if expect:
        act(user, n, target)
        return
    before = _snapshot(n)
    if action == "create":
        with pytest.raises(ValidationError) as exc:
            act(user, n, target)
        assert "targets" in exc.value.errors
    else:
        with pytest.raises(PermissionDenied):
            act(user, n, target)
    assert _snapshot(n) == before, "a refused action changed the notice"
    if action == "answer":
        assert feedback.counts_for(n) == {"open": 1}


# --- beyond the matrix -----------------------------------------------------------------------


def test_reviewer_cannot_approve_own_submission(world: World) -> None:
    both = user_service.create(
        None,
        "both",
        PASSWORD,
        grants=[(Role.EDITOR, world.village), (Role.REVIEWER, world.village)],
    )
    n = notices.create(both, data(["V11"]))
    notices.submit(both, n)
    assert not notices.can(both, "approve", n)
    with pytest.raises(PermissionDenied) as exc:
        notices.approve(both, n)
    assert exc.value.message == _("You cannot approve a notice you submitted yourself.")
    with pytest.raises(PermissionDenied):
        notices.reject(both, n, "自己驳回自己")
    assert n.status == NoticeStatus.SUBMITTED
    assert n not in notices.review_queue(both)
    assert n in notices.review_queue(world.village_reviewer)
    notices.approve(world.village_reviewer, n)
    assert n.status == NoticeStatus.APPROVED


def test_admin_cannot_approve_own_submission(world: World) -> None:
    n = notices.create(world.admin, data(["V11"]))
    notices.submit(world.admin, n)
    with pytest.raises(PermissionDenied):
        notices.approve(world.admin, n)
    notices.approve(world.county_reviewer, n)
    assert n.status == NoticeStatus.APPROVED


@pytest.mark.parametrize("action", ACTIONS)
def test_inactive_user_can_do_nothing(world: World, ops: Operators, action: str) -> None:
    user = world.admin  # the strongest role: if it is refused, every role is
    user_service.update(
        ops_admin(world),
        user,
        display_name=user.display_name,
        active=False,
        grants=[(g.role, g.region) for g in user.grants],
    )
    assert not user.is_active
    if action == "view":
        n = ops.notice("V11", "draft")
        assert not notices.can(user, "view", n)
        assert notices.list_notices(user) == ([], 0)
        return
    state, act = ACT[action]
    n = ops.notice("V11", state)
    before = _snapshot(n)
    with pytest.raises(ValidationError if action == "create" else PermissionDenied):
        act(user, n, "V11")
    assert _snapshot(n) == before


def ops_admin(world: World) -> User:
    """A second system administrator (an admin cannot deactivate themselves)."""
    return user_service.create(None, "admin2", PASSWORD, grants=[(Role.ADMIN, world.county)])


def test_user_with_several_roles(world: World, ops: Operators) -> None:
    """Editor in one town, reviewer in the other: each right holds only where it was granted."""
    mixed = user_service.create(
        None,
        "mixed",
        PASSWORD,
        grants=[(Role.EDITOR, world.town), (Role.REVIEWER, world.other_town)],
    )
    mine = notices.create(mixed, data(["V11"]))
    with pytest.raises(ValidationError) as exc:
        notices.create(mixed, data(["V21"]))
    assert "targets" in exc.value.errors
    notices.submit(mixed, mine)
    with pytest.raises(PermissionDenied):
        notices.approve(mixed, mine)  # no reviewer right in 柳河镇 (and it is their own)

    theirs = ops.notice("V21", "submitted")
    with pytest.raises(PermissionDenied):
        notices.update(mixed, theirs, data(["V21"]))
    notices.approve(mixed, theirs)
    assert theirs.status == NoticeStatus.APPROVED
    notices.publish(mixed, theirs)  # reviewers may publish what they may review
    assert theirs.status == NoticeStatus.PUBLISHED

    listed, total = notices.list_notices(mixed)
    assert {mine, theirs} <= set(listed) and total >= 2


def test_notice_is_inside_only_when_every_target_is(world: World, ops: Operators) -> None:
    """Two targets in different towns: a town editor sees it but may not change it."""
    n = notices.create(ops.editor, data(["V11", "V21"]))
    assert notices.can(world.town_editor, "view", n)
    assert not notices.can(world.town_editor, "edit", n)
    with pytest.raises(PermissionDenied):
        notices.submit(world.town_editor, n)
    with pytest.raises(ValidationError) as exc:
        notices.create(world.town_editor, data(["V11", "V21"]))
    assert "南岭村" in exc.value.errors["targets"]
    assert "前王庄村" not in exc.value.errors["targets"]


def test_county_wide_notice_is_visible_below_but_not_editable(world: World, ops: Operators) -> None:
    n = ops.notice("C0", "published")
    for user in (world.town_editor, world.village_editor, world.village_reviewer):
        assert notices.can(user, "view", n), user.username
        assert n in notices.list_notices(user)[0]
        assert not notices.can(user, "withdraw", n)
        with pytest.raises(PermissionDenied):
            notices.withdraw(user, n, "不该由我撤回")
    assert n.status == NoticeStatus.PUBLISHED


def test_grant_covers_descendants_at_any_depth(world: World) -> None:
    group = region_service.create(None, "V11G1", "一组", world.village)
    n = notices.create(world.town_editor, data([group.code]))
    assert [r.code for r in n.current.targets] == ["V11G1"]
    assert notices.can(world.village_editor, "edit", n)
    assert not notices.can(
        user_service.create(None, "v12ed", PASSWORD, grants=[(Role.EDITOR, world.village2)]),
        "edit",
        n,
    )


def test_withdraw_checks_the_live_targets(world: World, ops: Operators) -> None:
    """A pending revision aimed elsewhere does not hand the live notice to another editor."""
    n = ops.notice("V21", "published")
    notices.update(ops.editor, n, data(["V11"], title="改投前王庄村"))
    assert n.current.targets == [world.village]
    assert not notices.can(world.village_editor, "withdraw", n)
    with pytest.raises(PermissionDenied):
        notices.withdraw(world.village_editor, n, "撤回")
    assert n.status == NoticeStatus.PUBLISHED


def _region(code: str) -> Region:
    return region_service.get(code)


def test_matrix_regions_are_where_the_test_says(world: World, ops: Operators) -> None:
    """Guard the matrix itself: each OUTSIDE target really is outside that role's grants."""
    for role, code in OUTSIDE.items():
        user: User = getattr(world, role)
        target = _region(code)
        assert not any(g.region.contains(target) for g in user.grants), role
        if user.grants:
            assert any(g.region.contains(_region(INSIDE)) for g in user.grants), role
