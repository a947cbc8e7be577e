"""Forms for notices, review actions and feedback answers.

The forms only parse what the browser sends (CSRF, numbers, dates); the rules (required title,
targets inside the editor's regions, expiry after publication...) live in server.services, whose
field errors are put back on these forms by admin.guards.form_errors.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    MultipleFileField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Optional

from server.services.notices import REASON_MAX, TITLE_MAX

# The first format is the one written into the page: what <input type=datetime-local> expects.
LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]


class NoticeForm(FlaskForm):
    """Create or edit a notice. Choices are filled per request from the services."""

    title = StringField(_l("Title"), render_kw={"maxlength": TITLE_MAX})
    category = SelectField(_l("Category"), choices=[], validate_choice=False)
    body = TextAreaField(_l("Text"), render_kw={"rows": 14})
    # Region ids; the service refuses regions outside the editor's subtree with a message.
    targets = SelectMultipleField(_l("Publish to"), choices=[], validate_choice=False)
    publish_at = DateTimeLocalField(
        _l("Publish at"),
        format=LOCAL_FORMATS,
        validators=[Optional()],
        description=_l("Empty: an editor publishes it after approval. Set: it goes live by "
                       "itself at this time once approved."),
    )
    hold = BooleanField(_l("Hold after approval: I publish it myself"))
    expire_at = DateTimeLocalField(
        _l("Expires at"),
        format=LOCAL_FORMATS,
        validators=[Optional()],
        description=_l("Empty: stays until it is withdrawn."),
    )
    duration_s = IntegerField(
        _l("Seconds on screen"),
        default=20,
        validators=[InputRequired(message=_l("Enter a number of seconds."))],
    )
    budget_s = IntegerField(
        _l("Seconds per rotation at most"),
        validators=[Optional()],
        description=_l("A long notice shows this long each time round, then says how to read "
                       "the rest. Empty: the category's (two minutes unless set)."),
    )
    pinned = BooleanField(_l("Pinned: show before other notices"))
    images = MultipleFileField(_l("Add pictures"))
    # Pictures already accepted (by file name), so that nothing is lost when the form comes back.
    kept_images = HiddenField()
    remove_images = SelectMultipleField(choices=[], validate_choice=False)


class ActionForm(FlaskForm):
    """Submit, approve, publish: only the CSRF token and, for approval, the revision number."""

    revision = IntegerField(validators=[Optional()])
    back = HiddenField()


class ReasonForm(FlaskForm):
    """Reject or withdraw: a reason is required (the service says so if it is missing)."""

    reason = TextAreaField(_l("Reason"), render_kw={"rows": 2, "maxlength": REASON_MAX})
    revision = IntegerField(validators=[Optional()])
    back = HiddenField()


class AnswerForm(FlaskForm):
    answer = TextAreaField(_l("Answer"), render_kw={"rows": 3})
    tab = HiddenField()


class HideForm(FlaskForm):
    reason = StringField(_l("Reason for hiding"), render_kw={"maxlength": 500})
    tab = HiddenField()
