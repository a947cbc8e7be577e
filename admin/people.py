"""Regions, users, the user's own account and API tokens, and categories (the audit log:
admin/audit.py).

The views only read forms and call server.services; the services check permissions (their
PermissionDenied becomes the 403 page, or a message on the form that was being saved).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from admin import bp
from admin.forms_people import (
    EMPTY_GRANT_ROWS,
    ROLE_LABELS,
    CategoryForm,
    LanguageForm,
    PasswordForm,
    RegionForm,
    TokenForm,
    UserCreateForm,
    UserEditForm,
)
from admin.guards import form_errors, login_required, me
from server.extensions import db
from server.i18n import LANG_COOKIE
from server.models import Region, Role, RoleGrant, User
from server.services import categories, permissions, regions, sessions, users
from server.services import notices as notices_rules
from server.services.errors import NotFound, PermissionDenied, ServiceError, ValidationError

Page = str | tuple[str, int] | Response

LEVEL_NAMES = {
    "county": _l("County"),
    "town": _l("Town"),
    "village": _l("Village"),
    "group": _l("Group"),
}
@bp.app_template_filter("role_label")
def role_label(role: Role | str) -> str:
    return str(ROLE_LABELS.get(str(role), str(role)))


@bp.app_template_filter("level_label")
def level_label(region: Region) -> str:
    return str(LEVEL_NAMES[region.level_name])


def _failed(form: FlaskForm, exc: ServiceError) -> int:
    """Undo what the service may have half-changed, and put its message on the form."""
    db.session.rollback()
    if isinstance(exc, ValidationError):
        form_errors(form, exc)
    else:
        form.form_errors.append(exc.message)
    return exc.status


def _require_admin(user: User) -> None:
    if not user.is_active or not user.has_role(Role.ADMIN):
        raise PermissionDenied(_("Only administrators may do this."))


# --- regions -------------------------------------------------------------------------------


def _tree_order(nodes: Iterable[Region]) -> list[Region]:
    """Parents before children, siblings by code; roots are the nodes whose parent is absent."""
    nodes = list(nodes)
    ids = {r.id for r in nodes}
    children: dict[int | None, list[Region]] = {}
    for r in nodes:
        children.setdefault(r.parent_id if r.parent_id in ids else None, []).append(r)
    out: list[Region] = []

    def walk(parent_id: int | None) -> None:
        for r in sorted(children.get(parent_id, []), key=lambda x: x.code):
            out.append(r)
            walk(r.id)

    walk(None)
    return out


def _region_choices(nodes: Iterable[Region]) -> list[SelectChoice]:
    ordered = _tree_order(nodes)
    top = min((r.depth for r in ordered), default=0)
    return [
        SelectChoice(str(r.id), "\u3000" * (r.depth - top) + f"{r.name} ({r.code})")
        for r in ordered
    ]


def _region_from(value: str | None) -> Region | None:
    """The region a select sent (None for empty); NotFound for junk or unknown ids."""
    if not value:
        return None
    if not value.isdigit():
        raise NotFound(_("No region %(code)s.", code=value))
    return regions.get(int(value))


@bp.get("/regions")
@login_required
def region_list() -> Page:
    user = me()
    tree = _tree_order(regions.visible_to(user))
    top = min((r.depth for r in tree), default=0)
    administered = {r.id for r in regions.administered_by(user)}
    return render_template(
        "admin/regions/list.html",
        tree=tree,
        top=top,
        administered=administered,
        can_add_root=permissions.is_system_admin(user),
    )


@bp.route("/regions/new", methods=["GET", "POST"])
@login_required
def region_new() -> Page:
    user = me()
    scope = regions.administered_by(user)
    if not scope:
        raise PermissionDenied(_("Only administrators may add regions."))
    form = RegionForm()
    choices = _region_choices(scope)
    if permissions.is_system_admin(user):
        choices.insert(0, SelectChoice("", _("(top level)")))
    form.parent.choices = choices
    if request.method == "GET" and request.args.get("parent"):
        form.parent.data = request.args["parent"]
    status = 200
    if form.validate_on_submit():
        try:
            parent = _region_from(form.parent.data)
            region = regions.create(user, form.code.data or "", form.name.data or "", parent)
        except ServiceError as exc:
            status = _failed(form, exc)
        else:
            flash(_("Region %(name)s added.", name=region.name), "info")
            return redirect(url_for("admin.region_list"))
    elif form.is_submitted():
        status = 422
    return render_template("admin/regions/form.html", form=form, region=None), status


@bp.route("/regions/<int:region_id>/edit", methods=["GET", "POST"])
@login_required
def region_edit(region_id: int) -> Page:
    user = me()
    region = regions.get(region_id)
    if not permissions.covers(user, Role.ADMIN, [region]):
        raise PermissionDenied(
            _("You may not change %(name)s: it is outside your regions.", name=region.name)
        )
    form = RegionForm()
    if request.method == "GET":
        form.code.data, form.name.data = region.code, region.name
        form.parent.data = str(region.parent_id or "")
    # Where it may move: inside the actor's regions but not inside itself; the current parent
    # always stays on offer (a town admin may rename the town without moving it).
    targets = [r for r in regions.administered_by(user) if not region.contains(r)]
    if region.parent is not None and region.parent not in targets:
        targets.append(region.parent)
    choices = _region_choices(targets)
    if region.parent is None:
        choices.insert(0, SelectChoice("", _("(top level)")))
    form.parent.choices = choices
    status = 200
    if form.validate_on_submit():
        try:
            parent = _region_from(form.parent.data)
            regions.update(
                user, region, code=form.code.data or "", name=form.name.data or "", parent=parent
            )
        except ServiceError as exc:
            status = _failed(form, exc)
        else:
            flash(_("Region %(name)s saved.", name=region.name), "info")
            return redirect(url_for("admin.region_list"))
    elif form.is_submitted():
        status = 422
    return render_template("admin/regions/form.html", form=form, region=region), status


# --- users ---------------------------------------------------------------------------------


def _grant_rows(form: UserCreateForm | UserEditForm, scope: list[Region]) -> None:
    choices = [SelectChoice("", "—"), *_region_choices(scope)]
    for row in form.grants:
        row.form.region.choices = choices


def _grants_from(form: UserCreateForm | UserEditForm) -> list[tuple[Role, Region]] | None:
    """The role grants typed into the rows (duplicates dropped), or None with row errors."""
    grants: list[tuple[Role, Region]] = []
    ok = True
    for row in form.grants:
        role, region_value = row.form.role.data, row.form.region.data
        if not role:
            continue
        if not region_value:
            row.form.region.errors = [_("Choose a region for this role.")]
            ok = False
            continue
        try:
            region = _region_from(region_value)
        except NotFound as exc:
            row.form.region.errors = [exc.message]
            ok = False
            continue
        assert region is not None
        if (Role(role), region) not in grants:
            grants.append((Role(role), region))
    return grants if ok else None


@bp.get("/users")
@login_required
def user_list() -> Page:
    people = users.list_manageable(me())
    return render_template("admin/users/list.html", people=people)


@bp.route("/users/new", methods=["GET", "POST"])
@login_required
def user_new() -> Page:
    actor = me()
    _require_admin(actor)
    form = UserCreateForm()
    _grant_rows(form, regions.administered_by(actor))
    status = 200
    if form.is_submitted():
        valid = form.validate_on_submit()
        grants = _grants_from(form)
        status = 422
        if not valid or grants is None:
            # Name every problem in one go: the service's checks on the fields that passed
            # the form's own, as well as the grant rows.
            found = users.new_user_errors(
                form.username.data or "", form.password.data or "", form.display_name.data or ""
            )
            found = {k: v for k, v in found.items() if not getattr(form, k).errors}
            if found:
                form_errors(form, ValidationError(found))
        elif not grants and not permissions.is_system_admin(actor):
            form.form_errors.append(_("Give the user at least one role inside your regions."))
        else:
            try:
                user = users.create(
                    actor,
                    form.username.data or "",
                    form.password.data or "",
                    display_name=form.display_name.data or "",
                    grants=grants,
                )
            except ServiceError as exc:
                status = _failed(form, exc)
            else:
                flash(_("User %(name)s created.", name=user.username), "info")
                return redirect(url_for("admin.user_list"))
    return render_template("admin/users/form.html", form=form, person=None), status


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
@login_required
def user_edit(user_id: int) -> Page:
    actor = me()
    _require_admin(actor)
    person = users.get(user_id)
    if not users.manageable(actor, person):
        raise PermissionDenied(_("You may not change this user."))
    if request.method == "POST":
        form = UserEditForm()
    else:
        rows: list[dict[str, Any]] = [
            {"role": g.role.value, "region": str(g.region_id)} for g in person.grants
        ]
        rows += [{"role": "", "region": ""}] * max(2, EMPTY_GRANT_ROWS - len(rows))
        form = UserEditForm(display_name=person.display_name, active=person.active, grants=rows)
    scope = regions.administered_by(actor)
    scope += [g.region for g in person.grants if g.region not in scope]
    _grant_rows(form, scope)
    status = 200
    if form.validate_on_submit():
        grants = _grants_from(form)
        if grants is None:
            status = 422
        else:
            try:
                users.update(
                    actor,
                    person,
                    display_name=form.display_name.data or "",
                    active=bool(form.active.data),
                    grants=grants,
                    password=form.password.data or "",
                )
            except ServiceError as exc:
                status = _failed(form, exc)
            else:
                flash(_("User %(name)s saved.", name=person.username), "info")
                return redirect(url_for("admin.user_list"))
    elif form.is_submitted():
        status = 422
    return render_template("admin/users/form.html", form=form, person=person), status


# --- my account and API tokens -------------------------------------------------------------


_BROWSERS = (("MicroMessenger", "WeChat"), ("QQBrowser", "QQ Browser"), ("Edg/", "Edge"),
             ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iPhone"),
            ("iPad", "iPad"), ("Mac OS X", "macOS"), ("Linux", "Linux"))


def browser_label(user_agent: str) -> str:
    """"Chrome · Windows" for a User-Agent header (the raw text when it names neither)."""
    ua = user_agent or ""
    browser = next((name for key, name in _BROWSERS if key in ua), None)
    system = next((name for key, name in _SYSTEMS if key in ua), None)
    if browser is None and system is None:
        return ua[:60]
    return " · ".join(x for x in (browser, system) if x)


def _account_page(
    *,
    password_form: PasswordForm | None = None,
    language_form: LanguageForm | None = None,
    token_form: TokenForm | None = None,
    new_secret: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    user = me()
    return render_template(
        "admin/account/index.html",
        user=user,
        password_form=password_form or PasswordForm(formdata=None),
        language_form=language_form or LanguageForm(formdata=None, locale=user.locale or "zh"),
        token_form=token_form or TokenForm(formdata=None),
        tokens=users.tokens_of(user),
        sessions=[{"row": row, "user_agent": browser_label(row.user_agent),
                   "this": sessions.is_current(user, row)} for row in sessions.active_for(user)],
        new_secret=new_secret,
    ), status


@bp.get("/account")
@login_required
def account() -> Page:
    return _account_page()


@bp.post("/account/password")
@login_required
def account_password() -> Page:
    form = PasswordForm()
    if not form.validate_on_submit():
        return _account_page(password_form=form, status=422)
    try:
        users.change_password(me(), form.old_password.data or "", form.password.data or "")
    except ServiceError as exc:
        return _account_page(password_form=form, status=_failed(form, exc))
    flash(_("Your password is changed."), "info")
    return redirect(url_for("admin.account"))


@bp.post("/account/language")
@login_required
def account_language() -> Page:
    form = LanguageForm()
    if not form.validate_on_submit():
        return _account_page(language_form=form, status=422)
    try:
        users.set_locale(me(), form.locale.data)
    except ServiceError as exc:
        return _account_page(language_form=form, status=_failed(form, exc))
    response = redirect(url_for("admin.account"))
    # The language cookie (from ?lang=) wins over the stored setting: make it agree.
    response.set_cookie(LANG_COOKIE, form.locale.data or "zh", max_age=365 * 86400,
                        samesite="Lax")
    return response


@bp.post("/account/tokens")
@login_required
def account_token_new() -> Page:
    form = TokenForm()
    if not form.validate_on_submit():
        return _account_page(token_form=form, status=422)
    try:
        token, secret = users.create_token(me(), form.name.data or "")
    except ServiceError as exc:
        return _account_page(token_form=form, status=_failed(form, exc))
    flash(_("API token %(name)s created.", name=token.name), "info")
    # Rendered, not redirected: the secret is shown this once and stored nowhere.
    return _account_page(new_secret=secret, status=201)


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def account_token_revoke(token_id: int) -> Page:
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    token = users.get_token(token_id)
    if token.revoked_at is None:
        users.revoke_token(me(), token)
        flash(_("API token %(name)s revoked.", name=token.name), "info")
    return redirect(url_for("admin.account"))


@bp.post("/account/sessions/<int:session_id>/end")
@login_required
def account_session_end(session_id: int) -> Page:
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        sessions.end(me(), session_id)
    except ServiceError as exc:
        abort(exc.status)
    flash(_("The session is ended: that browser must log in again."), "info")
    return redirect(url_for("admin.account") + "#sessions")


@bp.post("/account/sessions/end-others")
@login_required
def account_sessions_end_others() -> Page:
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    user = me()
    count = sessions.end_all(user, actor=user, reason="ended", keep_key=user.session_key)
    db.session.commit()
    flash(_("%(n)s other sessions ended.", n=count), "info")
    return redirect(url_for("admin.account") + "#sessions")


# --- categories ----------------------------------------------------------------------------


def _category_page(form: CategoryForm | None = None, status: int = 200) -> tuple[str, int]:
    return render_template(
        "admin/categories/list.html",
        items=categories.all_(),
        form=form or CategoryForm(formdata=None),
        may_change=permissions.is_system_admin(me()),
    ), status


@bp.get("/categories")
@login_required
def category_list() -> Page:
    return _category_page()


@bp.post("/categories")
@login_required
def category_new() -> Page:
    actor = me()
    permissions.require_system_admin(actor)
    form = CategoryForm()
    if not form.validate_on_submit():
        return _category_page(form, 422)
    try:
        category = categories.create(
            actor,
            (form.key.data or "").strip(),
            form.name.data or "",
            form.name_en.data or "",
            (form.color.data or "").lower(),
        )
    except ServiceError as exc:
        return _category_page(form, _failed(form, exc))
    flash(_("Category %(name)s added.", name=category.name), "info")
    return redirect(url_for("admin.category_list"))


@bp.post("/categories/<int:category_id>/budget")
@login_required
def category_set_budget(category_id: int) -> Page:
    actor = me()
    permissions.require_system_admin(actor)
    if not FlaskForm().validate_on_submit():
        abort(400)
    category = categories.get(category_id)
    raw = (request.form.get("budget_s") or "").strip()
    try:
        categories.set_budget(actor, category, int(raw) if raw else None)
    except ValueError:
        flash(_("Time per rotation must be %(min)s to %(max)s seconds.",
                min=notices_rules.BUDGET_MIN, max=notices_rules.BUDGET_MAX),
              "error")
        return redirect(url_for("admin.category_list"))
    except ValidationError as exc:
        db.session.rollback()
        flash(exc.errors.get("budget_s", exc.message), "error")
        return redirect(url_for("admin.category_list"))
    flash(_("Category %(name)s saved.", name=category.name), "info")
    return redirect(url_for("admin.category_list"))


@bp.post("/categories/<int:category_id>/active")
@login_required
def category_set_active(category_id: int) -> Response:
    actor = me()
    permissions.require_system_admin(actor)
    if not FlaskForm().validate_on_submit():
        abort(400)
    category = categories.get(category_id)
    active = request.form.get("active") == "1"
    categories.set_active(actor, category, active)
    flash(
        _("Category %(name)s is active.", name=category.name)
        if active
        else _("Category %(name)s is deactivated.", name=category.name),
        "info",
    )
    return redirect(url_for("admin.category_list"))


def grant_text(grant: RoleGrant) -> str:
    """'Editor @ 柳河镇'."""
    return f"{role_label(grant.role)} @ {grant.region.name}"


bp.add_app_template_filter(grant_text, "grant_text")
