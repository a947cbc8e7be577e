"""Names of states, actions and roles as people read them. Literal here so that the
translation catalogue picks them up; services, admin and API all use these."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

STATUS_LABELS = {
    "draft": _l("Draft"),
    "submitted": _l("Awaiting review"),
    "approved": _l("Approved"),
    "scheduled": _l("Scheduled"),
    "published": _l("Published"),
    "expired": _l("Expired"),
    "withdrawn": _l("Withdrawn"),
    "live": _l("Live"),
    "superseded": _l("Replaced"),
    "pending_review": _l("Awaiting review (incl. edits)"),
    "to_publish": _l("Approved, to publish"),
    "overdue": _l("Past its publish time"),
    "returned": _l("Sent back"),
}

# Verbs for "Cannot %(action)s: ..." messages.
VERB_LABELS = {
    "submit": _l("submit"),
    "approve": _l("approve"),
    "reject": _l("reject"),
    "publish": _l("publish"),
    "withdraw": _l("withdraw"),
}

# What the audit log and history say happened.
ACTION_LABELS = {
    "create": _l("created"),
    "edit": _l("edited"),
    "revise": _l("new revision"),
    "reopen": _l("back to draft"),
    "submit": _l("submitted for review"),
    "approve": _l("approved"),
    "reject": _l("rejected"),
    "schedule": _l("scheduled"),
    "publish": _l("published"),
    "withdraw": _l("withdrawn"),
    "expire": _l("expired"),
    "skip": _l("not published (expired first)"),
    # screens
    "pair": _l("paired"),
    "rename": _l("renamed"),
    "move": _l("moved"),
    "revoke": _l("revoked"),
    "token": _l("new token issued"),
    "screenshot": _l("screenshot requested"),
    # admin sessions
    "login": _l("logged in"),
    "end_session": _l("session ended"),
    "end_sessions": _l("sessions ended"),
    # emergency alerts
    "issue": _l("alert issued"),
    "confirm": _l("alert confirmed"),
    "propose": _l("change proposed"),
    "cancel": _l("alert cancelled"),
    # people, places and the rest
    "update": _l("updated"),
    "delete": _l("deleted"),
    "password": _l("password changed"),
    "activate": _l("enabled"),
    "deactivate": _l("disabled"),
    "grant": _l("role given"),
    "remove_grant": _l("role taken away"),
    "answer": _l("answered"),
    "hide": _l("hidden"),
    "failed": _l("login failed"),
}

ROLE_LABELS = {
    "admin": _l("Administrator"),
    "editor": _l("Editor"),
    "reviewer": _l("Reviewer"),
    "alert": _l("Alert issuer"),
}

# Emergency alerts: their states and the four levels (I highest).
ALERT_STATUS_LABELS = {
    "pending": _l("Waiting for a second person"),
    "active": _l("In force"),
    "cancelled": _l("Cancelled"),
    "expired": _l("Expired"),
    "rejected": _l("Rejected"),
}
# Every state an audit event names (notices, alerts, residents' questions), as people read it.
STATE_LABELS = {
    **STATUS_LABELS,
    **{k: v for k, v in ALERT_STATUS_LABELS.items() if k not in STATUS_LABELS},
    "open": _l("Unanswered"),
    "answered": _l("Answered"),
    "hidden": _l("Hidden"),
}
# "红色预警": what the level is called on its own, and with an event ("暴雨红色预警").
LEVEL_ALERT_NAMES = {
    1: _l("Red alert"),
    2: _l("Orange alert"),
    3: _l("Yellow alert"),
    4: _l("Blue alert"),
}
EVENT_ALERT_NAMES = {
    1: _l("%(event)s red alert"),
    2: _l("%(event)s orange alert"),
    3: _l("%(event)s yellow alert"),
    4: _l("%(event)s blue alert"),
}
LEVEL_LABELS = {
    1: _l("Level I (red)"),
    2: _l("Level II (orange)"),
    3: _l("Level III (yellow)"),
    4: _l("Level IV (blue)"),
}


def label(table: dict[str, object], key: object) -> str:
    """The label for `key`, or the key itself when the table has none."""
    return str(table.get(str(key), key))
