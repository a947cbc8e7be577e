"""Forms for emergency alerts: issue or update, confirm, reject, cancel, CAP upload.

The forms only parse what the browser sends (CSRF, dates, the file); the rules (alert role,
regions, lengths, expiry) live in server.services.alerts, whose field errors are put back on
these forms by admin.guards.form_errors.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Optional
from wtforms.widgets import HiddenInput

from admin.forms import LOCAL_FORMATS
from server.services.alerts import EVENT_MAX, REASON_MAX, SENDER_NAME_MAX, TEXT_MAX, TITLE_MAX

# Common event types offered in the form's datalist (any other may be typed).
EVENT_TYPES = (
    "暴雨", "台风", "大风", "暴雪", "寒潮", "高温", "雷电", "冰雹", "大雾", "道路结冰",
    "森林火险", "地质灾害", "地震", "洪水", "突发公共卫生事件", "停水停电",
)


class AlertForm(FlaskForm):
    """Issue or update an alert. Region choices are filled per request."""

    level = RadioField(_l("Level"), choices=[SelectChoice(str(n), r) for n, r in
                                               ((1, "I"), (2, "II"), (3, "III"), (4, "IV"))],
                       validate_choice=False)
    event = StringField(_l("Event type"), render_kw={"maxlength": EVENT_MAX, "list": "event-types",
                                                     "autocomplete": "off"})
    title = StringField(_l("Title"), render_kw={"maxlength": TITLE_MAX})
    text = TextAreaField(_l("Text"), render_kw={"rows": 6, "maxlength": TEXT_MAX})
    instruction = TextAreaField(_l("What people should do"),
                                render_kw={"rows": 3, "maxlength": TEXT_MAX})
    sender_name = StringField(_l("Issued by"), render_kw={"maxlength": SENDER_NAME_MAX})
    # Region ids; the service refuses regions outside the user's alert grants with a message.
    targets = SelectMultipleField(_l("Alert these regions"), choices=[], validate_choice=False)
    starts_at = DateTimeLocalField(_l("In force from"), format=LOCAL_FORMATS,
                                   validators=[Optional()],
                                   description=_l("Empty: at once."))
    expires_at = DateTimeLocalField(_l("Expires at"), format=LOCAL_FORMATS,
                                    validators=[Optional()])


class ConfirmForm(FlaskForm):
    """The second person's confirmation (two-person rule)."""

    checked = BooleanField(_l("I have read this alert: put it on the screens now"))
    # The version read (the one waiting): a confirmation never applies to a later one.
    version = IntegerField(widget=HiddenInput(), validators=[Optional()])


class ReasonForm(FlaskForm):
    """Reject (pending) or cancel (in force): a reason and a tick to confirm."""

    reason = TextAreaField(_l("Reason"), render_kw={"rows": 2, "maxlength": REASON_MAX})
    checked = BooleanField(_l("Yes, I mean it"))


class CapUploadForm(FlaskForm):
    file = FileField(_l("CAP 1.2 file (XML)"))
    targets = SelectMultipleField(_l("Alert these regions"), choices=[], validate_choice=False)
