"""Forms for regions, users, the user's own account, categories and the audit log filter.

Region choices are filled in by the views (they depend on who is asking). The region selects
do not check their choices: the services decide what lies inside the actor's subtree, so a
forged value gets the services' clear message instead of "not a valid choice"."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    ColorField,
    DateField,
    FieldList,
    Form,
    FormField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from server.labels import ROLE_LABELS

EMPTY_GRANT_ROWS = 4


class RegionForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=32)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=80)])
    parent = SelectField(_l("Parent region"), choices=[], validate_choice=False)


class GrantForm(Form):
    """One row of "role @ region"; a row with no role is ignored."""

    role = SelectField(
        _l("Role"),
        choices=[SelectChoice("", "—"), *(SelectChoice(k, v) for k, v in ROLE_LABELS.items())],
        default="",
    )
    region = SelectField(_l("Region"), choices=[], validate_choice=False, default="")


class UserCreateForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(min=3, max=64)])
    display_name = StringField(_l("Display name"), validators=[Length(max=80)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])
    grants = FieldList(FormField(GrantForm), min_entries=EMPTY_GRANT_ROWS, max_entries=40)


class UserEditForm(FlaskForm):
    display_name = StringField(_l("Display name"), validators=[Length(max=80)])
    active = BooleanField(_l("Active (may log in)"))
    password = PasswordField(
        _l("New password (leave empty to keep)"), validators=[Optional(), Length(max=256)]
    )
    grants = FieldList(FormField(GrantForm), min_entries=0, max_entries=40)


class PasswordForm(FlaskForm):
    old_password = PasswordField(
        _l("Current password"), validators=[DataRequired(), Length(max=256)]
    )
    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=256)])
    password2 = PasswordField(
        _l("New password again"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ."))],
    )


class LanguageForm(FlaskForm):
    locale = SelectField(
        _l("Language"),
        choices=[SelectChoice("zh", "中文"), SelectChoice("en", "English")],
        default="zh",
    )


class TokenForm(FlaskForm):
    name = StringField(_l("Token name"), validators=[DataRequired(), Length(max=80)])


class CategoryForm(FlaskForm):
    key = StringField(_l("Key"), validators=[DataRequired(), Length(max=32)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=40)])
    name_en = StringField(_l("English name"), validators=[Length(max=60)])
    color = ColorField(_l("Colour"), default="#b71c1c", validators=[DataRequired()])


class AuditFilterForm(FlaskForm):
    """Read from the query string; a GET filter needs no CSRF token."""

    class Meta:
        csrf = False

    entity = SelectField(_l("Entity"), choices=[], default="")
    action = SelectField(_l("Action"), choices=[], default="")
    username = StringField(_l("User"), validators=[Optional(), Length(max=64)])
    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("Until"), validators=[Optional()])
