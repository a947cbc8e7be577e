"""SQLAlchemy models, one module per aggregate."""

from server.models.alerts import Alert, AlertDelivery, AlertStatus, alert_targets
from server.models.audit import AuditEvent
from server.models.cadence import CadenceRule
from server.models.feedback import Feedback
from server.models.notices import (
    Category,
    Image,
    Notice,
    NoticeStatus,
    Revision,
    RevisionState,
    ScanEvent,
)
from server.models.regions import Region
from server.models.screens import Counter, PairingRequest, RegionRevision, Screen
from server.models.stats import PlayBatch, PlayStat, ScreenDay, Screenshot
from server.models.users import ApiToken, Role, RoleGrant, User, UserSession

__all__ = [
    "Alert",
    "AlertDelivery",
    "AlertStatus",
    "ApiToken",
    "AuditEvent",
    "CadenceRule",
    "Category",
    "Counter",
    "Feedback",
    "Image",
    "Notice",
    "NoticeStatus",
    "PairingRequest",
    "PlayBatch",
    "PlayStat",
    "Region",
    "RegionRevision",
    "Revision",
    "RevisionState",
    "Role",
    "RoleGrant",
    "ScanEvent",
    "Screen",
    "ScreenDay",
    "Screenshot",
    "User",
    "UserSession",
    "alert_targets",
]
