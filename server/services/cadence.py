"""Disclosure cadence (公开频次): how often the villages under a region must publish a category,
and which villages are overdue, so that the county can chase them.

Counting rule (also in the page's help text and docs/architecture.md):
- A *village* is a region on the village level of the tree (county → town → village, depth 2),
  or a region with nothing below it higher up (a town or street without villages). Deeper
  regions (村民小组) belong to their village. Villages need not have a screen: the notice page
  and its QR code disclose too.
- The rule for a village and a category is the one on the village itself or, failing that, on
  its nearest ancestor: a rule on a town overrides the county's for that town's villages.
- A village's last publication of a category is the latest time a notice of that category (the
  category of its live revision) went live aimed at the village itself or at a region below
  it. Notices aimed at a town or the county do not count: a county-wide notice is not the
  village's own disclosure. Published and expired notices count; withdrawn ones do not.
- Overdue: no such publication, or the last one more than N local days ago (published 31
  days ago is on time for "every 31 days"; 32 days ago is 1 day overdue).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask_babel import gettext as _
from sqlalchemy import func, select

from server.extensions import db
from server.models import CadenceRule, Category, Notice, NoticeStatus, Region, Role, User
from server.models.base import utcnow
from server.models.notices import Revision, revision_targets
from server.services import audit, permissions, regions
from server.services.errors import NotFound, ValidationError
from server.services.presence import local_day

PRESETS = {"monthly": 31, "quarterly": 92, "yearly": 366}
EVERY_MIN, EVERY_MAX = 1, 731
VILLAGE_DEPTH = 2
COUNTED = (NoticeStatus.PUBLISHED, NoticeStatus.EXPIRED)


# --- rules -------------------------------------------------------------------------------


def can_manage(user: User, region: Region) -> bool:
    """Admins of a region set its rules (and those of the regions below it)."""
    return permissions.covers(user, Role.ADMIN, [region])


def get_rule(rule_id: int) -> CadenceRule:
    rule = db.session.get(CadenceRule, rule_id)
    if rule is None:
        raise NotFound(_("No cadence rule %(id)s.", id=rule_id))
    return rule


def rules_for(user: User) -> list[CadenceRule]:
    """The rules that apply to the user's regions: on them, below them, or above them (the
    county's rules bind a town admin too), in tree order."""
    roots = [g.region for g in user.grants] if user.is_active else []
    if not roots:
        return []
    rules = db.session.scalars(select(CadenceRule)).all()
    shown = [r for r in rules
             if any(root.contains(r.region) or r.region.contains(root) for root in roots)]
    return sorted(shown, key=lambda r: (r.region.path, r.category.sort, r.category.id))


def _check_days(every_days: object) -> int:
    if (not isinstance(every_days, int) or isinstance(every_days, bool)
            or not EVERY_MIN <= every_days <= EVERY_MAX):
        raise ValidationError({"every_days": _(
            "A number of days from %(min)s to %(max)s.", min=EVERY_MIN, max=EVERY_MAX)})
    return every_days


def set_rule(actor: User, region: Region, category: Category, every_days: int) -> CadenceRule:
    """Villages under `region` publish `category` at least every `every_days` days; replaces
    the region's rule for that category. Audited; commits."""
    permissions.require(actor, Role.ADMIN, [region], _("set disclosure cadences"))
    every_days = _check_days(every_days)
    rule = db.session.scalar(select(CadenceRule).where(
        CadenceRule.region_id == region.id, CadenceRule.category_id == category.id))
    detail = {"region": region.code, "category": category.key, "every_days": every_days}
    if rule is None:
        rule = CadenceRule(region=region, category=category, every_days=every_days)
        db.session.add(rule)
        db.session.flush()
        audit.record(actor, "cadence", rule.id, "create", detail=detail)
    else:
        detail["was"] = rule.every_days
        rule.every_days = every_days
        audit.record(actor, "cadence", rule.id, "edit", detail=detail)
    db.session.commit()
    return rule


def delete_rule(actor: User, rule: CadenceRule) -> None:
    """Remove a rule (the one above it, if any, applies again). Audited; commits."""
    permissions.require(actor, Role.ADMIN, [rule.region], _("set disclosure cadences"))
    audit.record(actor, "cadence", rule.id, "delete", detail={
        "region": rule.region.code, "category": rule.category.key,
        "every_days": rule.every_days})
    db.session.delete(rule)
    db.session.commit()


# --- who is overdue ----------------------------------------------------------------------


@dataclass
class Overdue:
    """A village that has not published `category` as often as `rule` asks."""

    village: Region
    town: Region
    category: Category
    rule: CadenceRule
    last_at: datetime | None  # naive UTC; None: never published
    last_notice_id: int | None
    last_notice_code: str | None
    last_notice_title: str | None
    days_since: int | None

    @property
    def days_overdue(self) -> int | None:
        """Days past the deadline; None when the village never published the category."""
        if self.days_since is None:
            return None
        return self.days_since - self.rule.every_days

    @property
    def last_day(self) -> date | None:
        return local_day(self.last_at) if self.last_at is not None else None


def _ids(region: Region) -> list[int]:
    return [int(x) for x in region.path.strip("/").split("/") if x]


def villages(every: list[Region]) -> list[Region]:
    """The villages among `every` region (see the module's counting rule); `every` must hold
    all regions, so that "has nothing below it" can be told."""
    parents = {r.parent_id for r in every if r.parent_id is not None}
    return [r for r in every
            if r.depth == VILLAGE_DEPTH or (r.depth < VILLAGE_DEPTH and r.id not in parents)]


Publication = tuple[datetime, int, str, str]


def last_publications(village_ids: set[int]) -> dict[tuple[int, int], Publication]:
    """(village id, category id) → (when, notice id, code, title) of the latest publication
    aimed at the village or below it."""
    went_live = func.coalesce(Notice.published_at, Notice.first_published_at)
    rows = db.session.execute(
        select(Revision.category_id, Region.path, went_live, Notice.id, Notice.code,
               Revision.title)
        .select_from(Notice)
        .join(Revision, Revision.id == Notice.live_revision_id)
        .join(revision_targets, revision_targets.c.revision_id == Revision.id)
        .join(Region, Region.id == revision_targets.c.region_id)
        .where(Notice.status.in_(COUNTED), went_live.is_not(None))
    ).all()
    last: dict[tuple[int, int], Publication] = {}
    for category_id, path, at, notice_id, code, title in rows:
        ids = [int(x) for x in path.strip("/").split("/") if x]
        village_id = next((i for i in ids if i in village_ids), None)
        if village_id is None:
            continue  # aimed above the villages: not a village's own disclosure
        key = (village_id, category_id)
        if key not in last or at > last[key][0]:
            last[key] = (at, notice_id, code, title)
    return last


def status(user: User, now: datetime | None = None) -> list[Overdue]:
    """Every (village, category) under a rule in the user's regions, overdue or not."""
    now = now or utcnow()
    today = local_day(now)
    every = list(db.session.scalars(select(Region)))
    by_id = {r.id: r for r in every}
    all_villages = villages(every)
    visible = {r.id for r in regions.visible_to(user)} if user.is_active else set()
    mine = [v for v in all_villages if v.id in visible]
    rules: dict[int, dict[int, CadenceRule]] = {}
    for rule in db.session.scalars(select(CadenceRule)):
        rules.setdefault(rule.region_id, {})[rule.category_id] = rule
    if not rules or not mine:
        return []
    last = last_publications({v.id for v in all_villages})
    out: list[Overdue] = []
    for village in mine:
        chain = _ids(village)
        applying: dict[int, CadenceRule] = {}
        for region_id in chain:  # top down: a lower region's rule replaces the one above
            applying.update(rules.get(region_id, {}))
        town = by_id[chain[min(1, len(chain) - 1)]]
        for category_id, rule in applying.items():
            found = last.get((village.id, category_id))
            days_since = (today - local_day(found[0])).days if found else None
            out.append(Overdue(
                village=village, town=town, category=rule.category, rule=rule,
                last_at=found[0] if found else None,
                last_notice_id=found[1] if found else None,
                last_notice_code=found[2] if found else None,
                last_notice_title=found[3] if found else None,
                days_since=days_since,
            ))
    return out


def overdue(user: User, now: datetime | None = None, *, sort: str = "town") -> list[Overdue]:
    """The villages in the user's regions that are overdue, by town (tree order) and then most
    overdue first; sort="days": most overdue first across towns. Never published counts as
    the most overdue."""
    rows = [r for r in status(user, now)
            if r.days_since is None or r.days_since > r.rule.every_days]

    def lateness(r: Overdue) -> float:
        return float("inf") if r.days_overdue is None else r.days_overdue

    def tree(region: Region) -> list[int]:
        return _ids(region)

    if sort == "days":
        rows.sort(key=lambda r: (-lateness(r), tree(r.village), r.category.sort))
    else:
        rows.sort(key=lambda r: (tree(r.town), -lateness(r), tree(r.village), r.category.sort))
    return rows
