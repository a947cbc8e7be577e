"""Disclosure cadence: the villages that have not published a category as often as their
region's rule asks, grouped by town, with a CSV for chasing them; and the rules themselves,
kept by the admins of each region (server.services.cadence checks and audits)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectChoice, SelectField
from wtforms.validators import Optional

from admin import bp
from admin.guards import form_errors, login_required, me
from admin.notices import category_name, shows_service_errors
from admin.stats import csv_response
from server.extensions import db
from server.models import Region, User
from server.models.base import utcnow
from server.services import cadence, categories, regions, stats
from server.services.errors import NotFound, PermissionDenied, ServiceError, ValidationError

Page = str | tuple[str, int] | Response
PRESET_LABELS = {"monthly": _l("Monthly (31 days)"), "quarterly": _l("Quarterly (92 days)"),
                 "yearly": _l("Yearly (366 days)"), "custom": _l("Every … days")}
SORTS = {"town": _l("By town"), "days": _l("Most overdue first")}


class RuleForm(FlaskForm):
    region = SelectField(_l("Region"), choices=[], validate_choice=False)
    category = SelectField(_l("Category"), choices=[], validate_choice=False)
    preset = SelectField(_l("Cadence"), default="monthly",
                         choices=[SelectChoice(k, v) for k, v in PRESET_LABELS.items()])
    every_days = IntegerField(_l("Days"), validators=[Optional()],
                              render_kw={"min": cadence.EVERY_MIN, "max": cadence.EVERY_MAX,
                                         "inputmode": "numeric"})


def every_label(days: int) -> str:
    """“Monthly”, “Quarterly”, “Yearly” for the presets, else “Every N days”."""
    names = {31: _("Monthly"), 92: _("Quarterly"), 366: _("Yearly")}
    return names.get(days) or _("Every %(n)s days", n=days)


def _manageable(user: User) -> list[Region]:
    found = regions.administered_by(user)
    return sorted(found, key=lambda r: [int(x) for x in r.path.strip("/").split("/")])


def _region_choices(nodes: list[Region]) -> list[SelectChoice]:
    top = min((r.depth for r in nodes), default=0)
    return [SelectChoice(str(r.id), "\u3000" * (r.depth - top) + r.name) for r in nodes]


def _filters() -> tuple[str, str]:
    sort = request.args.get("sort", "town")
    category = request.args.get("category", "")
    return (sort if sort in SORTS else "town"), category


def _rows(user: User, sort: str, category: str) -> list[cadence.Overdue]:
    rows = cadence.overdue(user, utcnow(), sort=sort)
    return [r for r in rows if not category or r.category.key == category]


def _page(form: RuleForm | None = None, status: int = 200) -> tuple[str, int]:
    user = me()
    sort, category = _filters()
    rows = _rows(user, sort, category)
    groups: OrderedDict[int, dict[str, Any]] = OrderedDict()
    for row in rows:
        group = groups.setdefault(row.town.id, {"town": row.town, "rows": [], "villages": set()})
        group["rows"].append(row)
        group["villages"].add(row.village.id)
    manageable = _manageable(user)
    if form is None:
        form = RuleForm(formdata=None)
    form.region.choices = _region_choices(manageable)
    form.category.choices = [SelectChoice(str(c.id), category_name(c)) for c in categories.active()]
    rules = cadence.rules_for(user)
    return render_template(
        "admin/cadence/overview.html",
        rows=rows,
        groups=list(groups.values()),
        villages_overdue=len({r.village.id for r in rows}),
        sort=sort,
        sorts=SORTS,
        category=category,
        categories=categories.all_(),
        rules=rules,
        form=form if manageable else None,
        can_manage=lambda rule: cadence.can_manage(user, rule.region),
        every_label=every_label,
        delete_form=FlaskForm(formdata=None),
    ), status


@bp.get("/cadence")
@login_required
def cadence_overview() -> Page:
    return _page()


@bp.post("/cadence/rules")
@login_required
def cadence_rule_save() -> Page:
    user = me()
    form = RuleForm()
    if not form.validate_on_submit():
        return _page(form, 422)
    region = _find_region(form.region.data)
    category = _find_category(form.category.data)
    if region is None:
        form.region.errors = [_("Choose a region.")]
    if category is None:
        form.category.errors = [_("Choose a category.")]
    preset = form.preset.data or "custom"
    days = cadence.PRESETS.get(preset, form.every_days.data)
    if days is None:
        form.every_days.errors = [_("Say how many days.")]
    if region is None or category is None or days is None:
        return _page(form, 422)
    try:
        cadence.set_rule(user, region, category, int(days))
    except ValidationError as exc:
        db.session.rollback()
        form_errors(form, exc)
        return _page(form, 422)
    except PermissionDenied as exc:
        db.session.rollback()
        form.region.errors = [exc.message]
        return _page(form, 403)
    flash(_("%(region)s: %(category)s %(every)s.", region=region.name,
            category=category_name(category), every=every_label(int(days))), "success")
    return redirect(url_for("admin.cadence_overview") + "#rules")


def _find_region(value: str | None) -> Region | None:
    if not value or not str(value).isdigit():
        return None
    try:
        return regions.get(int(value))
    except NotFound:
        return None


def _find_category(value: str | None) -> Any:
    if not value or not str(value).isdigit():
        return None
    try:
        return categories.get(int(value))
    except NotFound:
        return None


@bp.post("/cadence/rules/<int:rule_id>/delete")
@login_required
@shows_service_errors
def cadence_rule_delete(rule_id: int) -> Page:
    user = me()
    if not FlaskForm().validate_on_submit():
        return _page(status=400)
    rule = cadence.get_rule(rule_id)
    name = f"{rule.region.name} · {category_name(rule.category)}"
    try:
        cadence.delete_rule(user, rule)
    except ServiceError:
        db.session.rollback()
        raise
    flash(_("The rule %(name)s is removed.", name=name), "success")
    return redirect(url_for("admin.cadence_overview") + "#rules")


@bp.get("/cadence/overdue.csv")
@login_required
def cadence_overdue_csv() -> Page:
    user = me()
    sort, category = _filters()
    header = [_("Town"), _("Village"), _("Village code"), _("Category"), _("Cadence (days)"),
              _("Rule set on"), _("Last publication"), _("Last notice"), _("Days since"),
              _("Days overdue")]
    rows = [[r.town.name, r.village.name, r.village.code, r.category.name, r.rule.every_days,
             r.rule.region.name, r.last_day.isoformat() if r.last_day else "",
             r.last_notice_code or "", "" if r.days_since is None else r.days_since,
             "" if r.days_overdue is None else r.days_overdue]
            for r in _rows(user, sort, category)]
    today = stats.period().end.isoformat()
    return csv_response(stats.rows_csv(header, rows), f"cunping-overdue-{today}.csv")
