"""The notice workflow through the services."""

from __future__ import annotations

from datetime import timedelta

import pytest

from server.models import NoticeStatus, RevisionState
from server.models.base import utcnow
from server.services import notices
from server.services.errors import Conflict
from server.services.notices import NoticeInput
from tests.conftest import World


def data(**kw: object) -> NoticeInput:
    base = {
        "title": "关于召开村民代表会议的通知",
        "body": "定于本周六上午九点召开。",
        "category": "village",
        "targets": ["V11"],
    }
    base.update(kw)
    return NoticeInput(**base)  # type: ignore[arg-type]


def test_draft_to_published(world: World) -> None:
    n = notices.create(world.village_editor, data())
    assert n.status == NoticeStatus.DRAFT and len(n.code) == 6
    notices.submit(world.village_editor, n)
    assert n.status == NoticeStatus.SUBMITTED
    notices.approve(world.village_reviewer, n)
    assert n.status == NoticeStatus.APPROVED
    notices.publish(world.village_editor, n)
    assert n.status == NoticeStatus.PUBLISHED
    assert n.live_revision is not None and n.live_revision.state == RevisionState.LIVE
    actions = [e.action for e in notices.history(n)]
    assert actions == ["create", "submit", "approve", "publish"]


def test_approving_twice_is_a_conflict(world: World) -> None:
    n = notices.create(world.village_editor, data())
    notices.submit(world.village_editor, n)
    notices.approve(world.village_reviewer, n)
    with pytest.raises(Conflict):
        notices.approve(world.town_reviewer, n)


def test_scheduled_publish_and_expiry_run_by_themselves(world: World) -> None:
    start = utcnow() + timedelta(hours=1)
    n = notices.create(
        world.village_editor, data(publish_at=start, expire_at=start + timedelta(days=1))
    )
    notices.submit(world.village_editor, n)
    notices.approve(world.village_reviewer, n)  # approval releases it for its publish time
    assert n.status == NoticeStatus.SCHEDULED
    assert notices.run_schedule(now=start - timedelta(minutes=1)) == []
    assert notices.run_schedule(now=start + timedelta(seconds=1)) == [n.id]
    assert n.status == NoticeStatus.PUBLISHED
    assert notices.run_schedule(now=start + timedelta(days=2)) == [n.id]
    assert n.status == NoticeStatus.EXPIRED
