"""SQLAlchemy models, one module per aggregate."""

from server.models.audit import AuditEvent
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
from server.models.users import ApiToken, Role, RoleGrant, User

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Category",
    "Counter",
    "Feedback",
    "Image",
    "Notice",
    "NoticeStatus",
    "PairingRequest",
    "Region",
    "RegionRevision",
    "Revision",
    "RevisionState",
    "Role",
    "RoleGrant",
    "ScanEvent",
    "Screen",
    "User",
]
