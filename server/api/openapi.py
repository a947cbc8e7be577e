"""API: its own OpenAPI 3.1 description at /api/v1/openapi.json (no token needed).

Written by hand next to the code; tests/test_api_openapi.py validates it and checks that every
route on the blueprint is described here, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response, request
from flask_babel import gettext as _

from server.api import bp
from server.api.envelope import BadRequest, ok


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"oneOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    return {**schema, "type": [kind, "null"]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


TIME = {"type": "string", "format": "date-time"}
STRING = {"type": "string"}
INT = {"type": "integer"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "message"],
                "properties": {
                    "status": INT,
                    "message": {"type": "string", "description": "For people; translated."},
                    "fields": {
                        "type": "object",
                        "additionalProperties": STRING,
                        "description": "What is wrong with each field (400 and 422).",
                    },
                },
            }
        },
    },
    "UserRef": {
        "type": "object",
        "required": ["id", "username", "name"],
        "properties": {"id": INT, "username": STRING, "name": STRING},
    },
    "RegionRef": {
        "type": "object",
        "required": ["code", "name"],
        "properties": {"code": STRING, "name": STRING},
    },
    "Me": {
        "type": "object",
        "required": ["id", "username", "name", "roles", "grants"],
        "properties": {
            "id": INT,
            "username": STRING,
            "name": STRING,
            "roles": {
                "type": "array",
                "items": {"type": "string", "enum": ["admin", "editor", "reviewer", "alert"]},
            },
            "grants": {
                "type": "array",
                "description": "Each role holds in the region's whole subtree.",
                "items": {
                    "type": "object",
                    "required": ["role", "region"],
                    "properties": {
                        "role": {"type": "string",
                                 "enum": ["admin", "editor", "reviewer", "alert"]},
                        "region": _ref("RegionRef"),
                    },
                },
            },
        },
    },
    "Region": {
        "type": "object",
        "required": ["code", "name", "parent", "depth", "level", "path", "full_name"],
        "properties": {
            "code": STRING,
            "name": STRING,
            "parent": _nullable(STRING),
            "depth": {"type": "integer", "description": "0 for the county."},
            "level": {"type": "string", "enum": ["county", "town", "village", "group"]},
            "path": {
                "type": "array",
                "items": STRING,
                "description": "Codes from the root down to this region.",
            },
            "full_name": STRING,
        },
    },
    "RegionWithChildren": {
        "allOf": [
            _ref("Region"),
            {
                "type": "object",
                "required": ["children"],
                "properties": {"children": {"type": "array", "items": _ref("Region")}},
            },
        ]
    },
    "Category": {
        "type": "object",
        "required": ["key", "name", "name_en", "color"],
        "properties": {"key": STRING, "name": STRING, "name_en": STRING, "color": STRING},
    },
    "Image": {
        "type": "object",
        "required": ["id", "url", "width", "height"],
        "properties": {
            "id": INT,
            "url": {"type": "string", "format": "uri"},
            "width": INT,
            "height": INT,
            "mime": STRING,
            "size": {"type": "integer", "description": "Bytes after re-encoding."},
        },
    },
    "Revision": {
        "type": "object",
        "required": ["number", "state", "title", "body", "body_html", "category", "targets"],
        "properties": {
            "number": INT,
            "state": {
                "type": "string",
                "enum": ["draft", "submitted", "approved", "scheduled", "live", "superseded"],
            },
            "title": {"type": "string", "description": "Plain text: escape it when shown."},
            "body": {"type": "string", "description": "The Markdown subset as sent."},
            "body_html": {"type": "string", "description": "Safe HTML (raw HTML shown inert)."},
            "category": STRING,
            "targets": {"type": "array", "items": STRING},
            "publish_at": _nullable(TIME),
            "expire_at": _nullable(TIME),
            "duration_s": INT,
            "pinned": {"type": "boolean"},
            "hold": {"type": "boolean"},
            "budget_s": _nullable(INT),
            "images": {"type": "array", "items": _ref("Image")},
            "created_at": TIME,
            "created_by": _nullable(_ref("UserRef")),
            "submitted_at": _nullable(TIME),
            "submitted_by": _nullable(_ref("UserRef")),
            "reviewed_at": _nullable(TIME),
            "reviewed_by": _nullable(_ref("UserRef")),
            "reject_reason": _nullable(STRING),
        },
    },
    "Event": {
        "type": "object",
        "required": ["at", "action"],
        "properties": {
            "at": TIME,
            "action": {
                "type": "string",
                "description": "create, edit, revise, reopen, submit, approve, reject, "
                "schedule, publish, withdraw, expire, skip",
            },
            "from": _nullable(STRING),
            "to": _nullable(STRING),
            "reason": _nullable(STRING),
            "revision": _nullable(INT),
            "user": _nullable(_ref("UserRef")),
        },
    },
    "NoticeStatus": {
        "type": "string",
        "enum": [
            "draft",
            "submitted",
            "approved",
            "scheduled",
            "published",
            "expired",
            "withdrawn",
        ],
    },
    "NoticeSummary": {
        "type": "object",
        "required": ["id", "code", "status", "url", "qr_url", "title", "revision"],
        "properties": {
            "id": INT,
            "code": STRING,
            "status": _ref("NoticeStatus"),
            "url": {"type": "string", "format": "uri"},
            "qr_url": {"type": "string", "format": "uri"},
            "title": STRING,
            "category": STRING,
            "targets": {"type": "array", "items": STRING},
            "revision": INT,
            "revision_state": STRING,
            "live_revision": _nullable(INT),
            "updated_at": TIME,
        },
    },
    "NoticePage": {
        "type": "object",
        "required": ["items", "page", "per_page", "total"],
        "properties": {
            "items": {"type": "array", "items": _ref("NoticeSummary")},
            "page": INT,
            "per_page": INT,
            "total": INT,
        },
    },
    "Notice": {
        "type": "object",
        "required": ["id", "code", "status", "url", "qr_url", "revision", "history"],
        "properties": {
            "id": INT,
            "code": {"type": "string", "description": "The short public code (/n/<code>)."},
            "status": _ref("NoticeStatus"),
            "url": {"type": "string", "format": "uri"},
            "qr_url": {"type": "string", "format": "uri"},
            "created_at": TIME,
            "created_by": _nullable(_ref("UserRef")),
            "updated_at": TIME,
            "first_published_at": _nullable(TIME),
            "published_at": _nullable(TIME),
            "ended_at": _nullable(TIME),
            "withdraw_reason": _nullable(STRING),
            "reject_reason": _nullable(STRING),
            "revision": _ref("Revision"),
            "live_revision": {
                **_nullable(_ref("Revision")),
                "description": "The revision on screens when it is not `revision`.",
            },
            "live_revision_number": _nullable(INT),
            "history": {"type": "array", "items": _ref("Event")},
        },
    },
    "NoticeFields": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "maxLength": 200, "description": "One line."},
            "body": {
                "type": "string",
                "maxLength": 20000,
                "description": "Markdown subset: paragraphs, lists, **bold**, tables.",
            },
            "category": {"type": "string", "description": "A category key, e.g. finance."},
            "targets": {
                "type": "array",
                "items": STRING,
                "description": "Region codes; a target covers everything below it.",
            },
            "publish_at": {
                **_nullable(TIME),
                "description": "Without an offset: Asia/Shanghai local time. Null: at once.",
            },
            "expire_at": {**_nullable(TIME), "description": "Null: never."},
            "duration_s": {"type": "integer", "minimum": 5, "maximum": 600, "default": 20},
            "pinned": {"type": "boolean", "default": False},
            "hold": {
                "type": "boolean",
                "default": False,
                "description": "True: approval does not release a notice with a publish time "
                "(an editor publishes it). False: approval schedules it for publish_at.",
            },
            "budget_s": {
                **_nullable({"type": "integer", "minimum": 10, "maximum": 3600}),
                "description": "Seconds the notice may hold a screen in one rotation. "
                "Null: its category's (120 unless set).",
            },
            "image_ids": {"type": "array", "items": INT, "maxItems": 9},
        },
    },
    "NoticeCreate": {
        "allOf": [
            _ref("NoticeFields"),
            {"type": "object", "required": ["title", "body", "category", "targets"]},
        ]
    },
    "Confirmation": {
        "type": "object",
        "additionalProperties": False,
        "required": ["version"],
        "properties": {"version": {
            "type": "integer", "minimum": 1,
            "description": "The version you read (awaiting_confirmation.version): refused with "
                           "409 when the alert changed since."}},
    },
    "AwaitingConfirmation": {
        "type": "object",
        "required": ["version", "by", "change"],
        "properties": {
            "version": {"type": "integer", "description": "Name it to confirm."},
            "by": {"type": "array", "items": _ref("UserRef"),
                   "description": "Who wrote it: none of them may confirm it."},
            "change": {
                "oneOf": [{"type": "null"}, {
                    "type": "object",
                    "description": "A change to an alert in force (raises the level or widens "
                                   "the targets), not on the screens until confirmed.",
                    "properties": {
                        "level": {"type": "integer"}, "event": {"type": "string"},
                        "title": {"type": "string"}, "text": {"type": "string"},
                        "instruction": {"type": "string"},
                        "sender_name": {"type": "string"},
                        "starts_at": {"type": "string"}, "expires_at": {"type": "string"},
                        "targets": {"type": "array", "items": {"type": "string"}},
                    },
                }],
            },
        },
    },
    "Reason": {
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "maxLength": 500}},
    },
}

# --- emergency alerts ----------------------------------------------------------------------

LEVEL = {"type": "integer", "enum": [1, 2, 3, 4], "description": "1 (I, red) is the highest."}
ALERT_STATUS = {"type": "string", "enum": ["pending", "active", "cancelled", "expired",
                                           "rejected"]}
SCHEMAS.update({
    "AlertSummary": {
        "type": "object",
        "required": ["code", "url", "status", "level", "event", "title", "targets", "version"],
        "properties": {
            "code": {"type": "string", "description": "Public code: the page /a/<code>."},
            "url": {"type": "string", "format": "uri"},
            "status": ALERT_STATUS,
            "level": LEVEL,
            "level_name": {"type": "string", "description": "红色, 橙色, 黄色 or 蓝色."},
            "color": STRING,
            "event": STRING,
            "title": STRING,
            "targets": {"type": "array", "items": STRING},
            "version": INT,
            "starts_at": TIME,
            "expires_at": TIME,
            "updated_at": TIME,
        },
    },
    "AlertScreen": {
        "type": "object",
        "required": ["code", "name", "online", "acknowledged", "attempts"],
        "properties": {
            "code": STRING,
            "name": STRING,
            "region": STRING,
            "online": {"type": "boolean"},
            "acknowledged": {
                "type": "boolean",
                "description": "Only an acknowledgement of the current version counts.",
            },
            "acked_at": _nullable(TIME),
            "latency_ms": {**_nullable(INT), "description": "From in force to acknowledged."},
            "attempts": {"type": "integer", "description": "Sends of the current version."},
            "last_sent_at": _nullable(TIME),
        },
    },
    "AlertDelivery": {
        "type": "object",
        "required": ["targeted", "acknowledged", "waiting", "screens"],
        "properties": {
            "targeted": INT,
            "acknowledged": INT,
            "waiting": INT,
            "screens": {
                "type": "array",
                "items": _ref("AlertScreen"),
                "description": "The screens that have not acknowledged come first; as many "
                               "as ?screens= asks (100 by default, `all` for every one).",
            },
            "screens_complete": {"type": "boolean",
                                 "description": "Every targeted screen is in `screens`."},
        },
    },
    "Alert": {
        "allOf": [
            _ref("AlertSummary"),
            {
                "type": "object",
                "required": ["text", "identifier", "sender", "delivery"],
                "properties": {
                    "text": STRING,
                    "instruction": STRING,
                    "sender_name": STRING,
                    "identifier": {"type": "string", "description": "The CAP identifier."},
                    "sender": STRING,
                    "references": {
                        "type": "array",
                        "items": {"type": "array", "items": STRING},
                        "description": "Earlier CAP messages: [sender, identifier, sent].",
                    },
                    "cap_status": {"type": "string", "enum": ["Actual", "Exercise"]},
                    "source": {"type": "string", "enum": ["admin", "api", "cap"]},
                    "created_at": TIME,
                    "issued_at": _nullable(TIME),
                    "ended_at": _nullable(TIME),
                    "end_reason": _nullable(STRING),
                    "issued_by": _nullable(_ref("UserRef")),
                    "confirmed_by": _nullable(_ref("UserRef")),
                    "ended_by": _nullable(_ref("UserRef")),
                    "awaiting_confirmation": {
                        **_nullable(_ref("AwaitingConfirmation")),
                        "description": "What waits for a second person (two-person rule).",
                    },
                    "cap_url": STRING,
                    "delivery": {
                        **_nullable(_ref("AlertDelivery")),
                        "description": "Null while the alert waits for a second person.",
                    },
                },
            },
        ]
    },
    "AlertFields": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "level": {
                "oneOf": [LEVEL, {"type": "string"}],
                "description": "1–4, or I/II/III/IV, 红色/橙色/黄色/蓝色, red…",
            },
            "event": {"type": "string", "maxLength": 80, "description": "暴雨, 台风, 地震 …"},
            "title": {"type": "string", "maxLength": 200},
            "text": {"type": "string", "maxLength": 5000},
            "instruction": {"type": "string", "maxLength": 5000},
            "sender_name": {"type": "string", "maxLength": 200},
            "targets": {"type": "array", "items": STRING, "description": "Region codes."},
            "starts_at": {**_nullable(TIME), "description": "Null: at once."},
            "expires_at": {**_nullable(TIME), "description": "Null: 6 hours after the start."},
        },
    },
    "AlertCreate": {
        "allOf": [
            _ref("AlertFields"),
            {"type": "object", "required": ["level", "event", "title", "text", "targets"]},
        ]
    },
})

RESPONSES: dict[str, Any] = {
    "BadRequest": _json(
        _ref("Error"), "Malformed: not JSON, not an object, unknown fields, bad parameters."
    ),
    "Unauthorized": {
        **_json(_ref("Error"), "No token, or an unknown or revoked one."),
        "headers": {"WWW-Authenticate": {"schema": STRING}},
    },
    "Forbidden": _json(_ref("Error"), "The token's user may not do this here."),
    "NotFound": _json(_ref("Error"), "No such notice or region."),
    "Conflict": _json(_ref("Error"), "Not possible in the notice's current state."),
    "TooLarge": _json(_ref("Error"), "The request or picture is too large."),
    "UnsupportedMediaType": _json(_ref("Error"), "Wrong Content-Type."),
    "Invalid": _json(_ref("Error"), "A field is wrong; `fields` says which and why."),
}

NOTICE_REF = {
    "name": "ref",
    "in": "path",
    "required": True,
    "description": "The notice's id or its public code.",
    "schema": STRING,
}


def _notice_action(summary: str, body: dict[str, Any] | None, *codes: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": ["notices"],
        "parameters": [NOTICE_REF],
        "responses": {
            "200": _json(_ref("Notice"), "The notice after the change."),
            "400": _err("BadRequest"),
            "401": _err("Unauthorized"),
            "403": _err("Forbidden"),
            "404": _err("NotFound"),
            **{code: _err({"409": "Conflict", "422": "Invalid"}[code]) for code in codes},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return op


def _list(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": schema}},
    }


PATHS: dict[str, Any] = {
    "/me": {
        "get": {
            "summary": "The token's user, with roles and regions",
            "tags": ["account"],
            "responses": {"200": _json(_ref("Me"), "Who you are."), "401": _err("Unauthorized")},
        }
    },
    "/notices": {
        "get": {
            "summary": "Notices visible to the token's user, newest change first",
            "tags": ["notices"],
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "schema": {
                        "type": "string",
                        "enum": [*SCHEMAS["NoticeStatus"]["enum"], "pending_review"],
                    },
                },
                {"name": "category", "in": "query", "schema": STRING},
                {
                    "name": "region",
                    "in": "query",
                    "schema": STRING,
                    "description": "A region code: notices aimed inside it.",
                },
                {
                    "name": "q",
                    "in": "query",
                    "schema": {"type": "string", "maxLength": 200},
                    "description": "Words in the title, or a code.",
                },
                {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {
                    "name": "per_page",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 30},
                    "description": "At most 100 (more is refused)."
                },
            ],
            "responses": {
                "200": _json(_ref("NoticePage"), "A page of notices."),
                "400": _err("BadRequest"),
                "401": _err("Unauthorized"),
            },
        },
        "post": {
            "summary": "Create a notice as a draft",
            "tags": ["notices"],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("NoticeCreate")}},
            },
            "responses": {
                "201": {
                    **_json(_ref("Notice"), "The new draft."),
                    "headers": {"Location": {"schema": STRING}},
                },
                "400": _err("BadRequest"),
                "401": _err("Unauthorized"),
                "413": _err("TooLarge"),
                "415": _err("UnsupportedMediaType"),
                "422": _err("Invalid"),
            },
        },
    },
    "/notices/{ref}": {
        "get": {
            "summary": "One notice in full: revision, live revision, history",
            "tags": ["notices"],
            "parameters": [NOTICE_REF],
            "responses": {
                "200": _json(_ref("Notice"), "The notice."),
                "401": _err("Unauthorized"),
                "403": _err("Forbidden"),
                "404": _err("NotFound"),
            },
        },
        "patch": {
            "summary": "Change some fields (the others keep their values)",
            "tags": ["notices"],
            "parameters": [NOTICE_REF],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("NoticeFields")}},
            },
            "responses": {
                "200": _json(_ref("Notice"), "The notice with its changed revision."),
                "400": _err("BadRequest"),
                "401": _err("Unauthorized"),
                "403": _err("Forbidden"),
                "404": _err("NotFound"),
                "413": _err("TooLarge"),
                "415": _err("UnsupportedMediaType"),
                "422": _err("Invalid"),
            },
        },
    },
    "/notices/{ref}/submit": {"post": _notice_action("Send the draft to review", None, "409")},
    "/notices/{ref}/approve": {
        "post": _notice_action(
            "Approve the submitted revision",
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "revision": {
                        "type": "integer",
                        "description": "Refuse (409) unless this revision is the one waiting.",
                    }
                },
            },
            "409",
            "422",
        )
    },
    "/notices/{ref}/reject": {
        "post": _notice_action("Send it back to draft", _ref("Reason"), "409", "422")
    },
    "/notices/{ref}/publish": {
        "post": _notice_action("Publish the approved revision (or schedule it)", None, "409", "422")
    },
    "/notices/{ref}/withdraw": {
        "post": _notice_action("Take it off the screens", _ref("Reason"), "409", "422")
    },
    "/images": {
        "post": {
            "summary": "Upload a picture (JPEG, PNG, GIF, WebP, BMP)",
            "tags": ["images"],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    }
                },
            },
            "responses": {
                "201": _json(_ref("Image"), "The stored picture; use its id in image_ids."),
                "401": _err("Unauthorized"),
                "403": _err("Forbidden"),
                "413": _err("TooLarge"),
                "415": _err("UnsupportedMediaType"),
                "422": _err("Invalid"),
            },
        }
    },
    "/regions": {
        "get": {
            "summary": "Every region, in tree order",
            "tags": ["regions"],
            "parameters": [
                {
                    "name": "under",
                    "in": "query",
                    "schema": STRING,
                    "description": "Only this region and those below it.",
                }
            ],
            "responses": {
                "200": _json(_list(_ref("Region")), "Regions."),
                "400": _err("BadRequest"),
                "401": _err("Unauthorized"),
            },
        }
    },
    "/regions/{code}": {
        "get": {
            "summary": "One region with its children",
            "tags": ["regions"],
            "parameters": [{"name": "code", "in": "path", "required": True, "schema": STRING}],
            "responses": {
                "200": _json(_ref("RegionWithChildren"), "The region."),
                "401": _err("Unauthorized"),
                "404": _err("NotFound"),
            },
        }
    },
    "/categories": {
        "get": {
            "summary": "Notice categories",
            "tags": ["categories"],
            "responses": {
                "200": _json(_list(_ref("Category")), "Active categories."),
                "401": _err("Unauthorized"),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This description",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
            },
        }
    },
}

ALERT_CODE = {"name": "code", "in": "path", "required": True, "schema": STRING,
              "description": "The alert's public code."}


def _alert_action(summary: str, body: dict[str, Any] | None, *codes: str,
                  body_required: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": ["alerts"],
        "parameters": [ALERT_CODE],
        "responses": {
            "200": _json(_ref("Alert"), "The alert after the change."),
            "400": _err("BadRequest"),
            "401": _err("Unauthorized"),
            "403": _err("Forbidden"),
            "404": _err("NotFound"),
            **{code: _err({"409": "Conflict", "422": "Invalid", "415": "UnsupportedMediaType"}[
                code]) for code in codes},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": body_required,
                             "content": {"application/json": {"schema": body}}}
    return op


CAP_XML = {"type": "string", "description": "A CAP 1.2 message (XML, at most 256 KB)."}
PATHS.update({
    "/alerts": {
        "get": {
            "summary": "Emergency alerts visible to the token's user, newest first",
            "tags": ["alerts"],
            "description": "For alert users and administrators only (403 for anyone else).",
            "parameters": [{"name": "status", "in": "query", "schema": ALERT_STATUS}],
            "responses": {
                "200": _json(_list(_ref("AlertSummary")), "Alerts (at most 100)."),
                "400": _err("BadRequest"),
                "401": _err("Unauthorized"),
                "403": _err("Forbidden"),
            },
        },
        "post": {
            "summary": "Issue an alert (JSON), or apply a CAP 1.2 Alert, Update or Cancel",
            "tags": ["alerts"],
            "description": "With Content-Type application/cap+xml (or application/xml) the "
            "body is a CAP message; `?targets=T1,V11` chooses the regions, else the message's "
            "行政区划代码 geocodes do. Under the two-person rule a new alert is `pending`.",
            "parameters": [{"name": "targets", "in": "query", "schema": STRING,
                            "description": "CAP only: region codes, comma separated."}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _ref("AlertCreate")},
                    "application/cap+xml": {"schema": CAP_XML},
                    "application/xml": {"schema": CAP_XML},
                },
            },
            "responses": {
                "200": _json(_ref("Alert"), "A CAP Update or Cancel: the changed alert."),
                "201": {
                    **_json(_ref("Alert"), "The new alert."),
                    "headers": {"Location": {"schema": STRING}},
                },
                "400": _err("BadRequest"),
                "401": _err("Unauthorized"),
                "403": _err("Forbidden"),
                "409": _err("Conflict"),
                "413": _err("TooLarge"),
                "415": _err("UnsupportedMediaType"),
                "422": _err("Invalid"),
            },
        },
    },
    "/alerts/{code}": {
        "get": {
            "summary": "One alert with its delivery: acknowledged / targeted screens",
            "tags": ["alerts"],
            "parameters": [ALERT_CODE, {
                "name": "screens", "in": "query", "required": False,
                "description": "Per-screen rows in `delivery.screens`: a number (0: counts "
                               "only) or `all`; 100 by default. The counts are always whole.",
                "schema": {"type": "string", "pattern": "^([0-9]+|all)$"}}],
            "responses": {
                "200": _json(_ref("Alert"), "The alert."),
                "401": _err("Unauthorized"),
                "403": _err("Forbidden"),
                "404": _err("NotFound"),
            },
        }
    },
    "/alerts/{code}.cap": {
        "get": {
            "summary": "The alert as CAP 1.2 XML (Alert, Update or Cancel)",
            "tags": ["alerts"],
            "parameters": [ALERT_CODE],
            "responses": {
                "200": {"description": "CAP 1.2",
                        "content": {"application/cap+xml": {"schema": CAP_XML}}},
                "401": _err("Unauthorized"),
                "403": _err("Forbidden"),
                "404": _err("NotFound"),
            },
        }
    },
    "/alerts/{code}/update": {
        "post": _alert_action("Change some fields: a new version on every screen",
                              _ref("AlertFields"), "409", "415", "422")
    },
    "/alerts/{code}/confirm": {
        "post": _alert_action("Confirm the version awaiting a second person: a pending alert, "
                              "or a change to an alert in force", _ref("Confirmation"), "409",
                              "415", "422", body_required=True)
    },
    "/alerts/{code}/reject": {
        "post": _alert_action("Refuse a pending alert", _ref("Reason"), "409", "422")
    },
    "/alerts/{code}/cancel": {
        "post": _alert_action("End the alert at once on every screen", _ref("Reason"), "409",
                              "422")
    },
})


def spec(server_url: str = "/api/v1") -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cunping API",
            "version": "1.0.0",
            "description": (
                "Push village notices from a county CMS into Cunping 村屏 and move them through "
                "review. Authenticate with a personal token: `Authorization: Bearer cp_...`. "
                "Times are ISO 8601; without an offset they are Asia/Shanghai local time; "
                "answers give +08:00. See docs/api.md."
            ),
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "tags": [
            {"name": n} for n in ("account", "notices", "alerts", "images", "regions", "categories",
                      "meta")
        ],
        "paths": PATHS,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal token cp_..., from My account → API tokens.",
                }
            },
            "schemas": SCHEMAS,
            "responses": RESPONSES,
        },
    }


def _flask_path(path: str) -> str:
    """/notices/{ref}/submit → /notices/<ref>/submit (the spec's paths as the blueprint's)."""
    return re.sub(r"\{(\w+)\}", r"<\1>", path)


def _query_names() -> dict[tuple[str, str], frozenset[str]]:
    """(blueprint rule, METHOD) → the query parameters the spec documents for it."""
    names: dict[tuple[str, str], frozenset[str]] = {}
    for path, item in PATHS.items():
        for method, op in item.items():
            params = [*item.get("parameters", []), *op.get("parameters", [])]
            names[(_flask_path(path), method.upper())] = frozenset(
                p["name"] for p in params if isinstance(p, dict) and p.get("in") == "query")
    return names


QUERY_NAMES = _query_names()


def _every_operation_may_refuse() -> None:
    """Every operation answers 400 to a query parameter it does not know (below)."""
    for item in PATHS.values():
        for op in item.values():
            if isinstance(op, dict) and "responses" in op:
                op["responses"].setdefault("400", _err("BadRequest"))


_every_operation_may_refuse()


@bp.before_request
def _only_documented_query_parameters() -> None:
    """A query parameter the spec does not name for this operation is refused (400), as an
    unknown JSON field is: `?per_pge=5` silently ignored is a bug in the caller's code."""
    rule = request.url_rule.rule if request.url_rule is not None else ""
    known = QUERY_NAMES.get((rule.removeprefix("/api/v1"), request.method))
    if known is None:
        return
    unknown = sorted(k for k in request.args if k not in known)
    if unknown:
        raise BadRequest(
            _("Unknown query parameters: %(names)s.", names=", ".join(unknown)[:200]),
            {k[:40]: _("Unknown parameter.") for k in unknown[:10]})


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI description (no token needed)."""
    return ok(spec(request.script_root + "/api/v1"))
