"""What every API module shares: the response envelope, reading and checking the request
(JSON body, query parameters, times), and the request errors that are not the services'.

Conventions (docs/api.md says the same to CMS developers):
- A success is the resource itself as a JSON object (a list comes as
  `{"items": [...], "page", "per_page", "total"}`); an error is
  `{"error": {"status", "message", "fields"?}}` (server/errors.py writes it).
- 400: the request itself is malformed (not JSON, not an object, unknown fields, bad query
  parameters); 415: the body is not `application/json`; 422: well-formed but a field's type or
  value is wrong (`fields` names each field).
- Times: ISO 8601. Input with an offset is taken as given; input without one is local time in
  the county's zone (BABEL_DEFAULT_TIMEZONE, Asia/Shanghai). Output is always in that zone with
  its offset, e.g. `2025-03-01T09:00:00+08:00`. The database keeps naive UTC.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, current_app, request
from flask_babel import gettext as _

from server.services.errors import ServiceError, ValidationError

INT_MAX = 2**31 - 1  # the database's INTEGER: a larger id or number is refused, not a 500
YEARS = (1970, 2200)  # times outside are refused (year 1 or 9999 has no UTC in some zones)


class BadRequest(ServiceError):
    """400: the request is malformed; `errors` (when given) names the offending parts."""

    status = 400

    def __init__(self, message: str, errors: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        if errors:
            self.errors = dict(errors)


class UnsupportedMediaType(ServiceError):
    status = 415


def ok(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response with Chinese kept readable (no \\u escapes)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    response = current_app.response_class(body + "\n", status=status, mimetype="application/json")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def page_of(items: list[Any], page: int, per_page: int, total: int) -> dict[str, Any]:
    return {"items": items, "page": page, "per_page": per_page, "total": total}


# --- the JSON body ---------------------------------------------------------------------------


def json_body(allowed: Iterable[str], *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object, with only `allowed` keys.

    An empty body counts as `{}` when not `required` (actions such as submit take no input).
    Unknown keys are refused rather than ignored: a misspelt `expire_at` silently dropped would
    leave a notice on screens for ever.
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise BadRequest(_("Send a JSON object in the request body."))
        return {}
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            _("Send the body as JSON with the header Content-Type: application/json.")
        )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(_("The body is not valid JSON: %(error)s", error=str(exc))) from None
    except RecursionError:  # JSON nested thousands deep: no field of ours is
        raise BadRequest(_("The body is nested too deeply.")) from None
    if not isinstance(data, dict):
        raise BadRequest(_("The body must be a JSON object."))
    allowed = set(allowed)
    unknown = sorted(k for k in data if k not in allowed)
    if unknown:
        raise BadRequest(
            _("Unknown fields: %(names)s.", names=", ".join(unknown)),
            {k: _("Unknown field.") for k in unknown},
        )
    return data


class Fields:
    """Type checks on a JSON object; every problem is collected, then raised at once (422)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.errors: dict[str, str] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def string(self, name: str, default: str = "") -> str:
        value = self.data.get(name, default)
        if not isinstance(value, str):
            self.errors[name] = _("Must be a string.")
            return default
        return value

    def optional_string(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        return self.string(name)

    def integer(self, name: str, default: int = 0) -> int:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.errors[name] = _("Must be a whole number.")
            return default
        if not -INT_MAX <= value <= INT_MAX:
            self.errors[name] = _("Out of range.")
            return default
        return value

    def optional_integer(self, name: str) -> int | None:
        if self.data.get(name) is None:
            return None
        return self.integer(name)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            self.errors[name] = _("Must be true or false.")
            return default
        return value

    def key(self, name: str) -> str | int | None:
        """A reference by key (string) or id (whole number)."""
        value = self.data.get(name)
        if isinstance(value, int) and not isinstance(value, bool) \
                and not -INT_MAX <= value <= INT_MAX:
            self.errors[name] = _("Out of range.")
            return None
        if value is None or (isinstance(value, str | int) and not isinstance(value, bool)):
            return value
        self.errors[name] = _("Must be a string.")
        return None

    def strings(self, name: str) -> list[str]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.errors[name] = _("Must be a list of strings.")
            return []
        return list(value)

    def integers(self, name: str) -> list[int]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            self.errors[name] = _("Must be a list of whole numbers.")
            return []
        if not all(-INT_MAX <= v <= INT_MAX for v in value):
            self.errors[name] = _("Out of range.")
            return []
        return list(value)

    def time(self, name: str) -> datetime | None:
        """An ISO 8601 time (or null) as naive UTC."""
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.errors[name] = _("Must be an ISO 8601 time such as 2025-03-01T09:00:00+08:00.")
            return None
        try:
            return parse_time(value)
        except OutOfRange:
            self.errors[name] = _("Must be a time between the years %(low)s and %(high)s.",
                                  low=YEARS[0], high=YEARS[1])
            return None
        except ValueError:
            self.errors[name] = _("Must be an ISO 8601 time such as 2025-03-01T09:00:00+08:00.")
            return None

    def check(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)


# --- query parameters ------------------------------------------------------------------------


def query_int(name: str, default: int, *, low: int = 1, high: int | None = None) -> int:
    """A whole-number query parameter from `low` to `high` (the spec's minimum and maximum);
    outside, refused."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if len(raw) <= 12 else int("x")  # a page of 10**39 is no page
    except ValueError:
        raise BadRequest(
            _("The parameter %(name)s must be a whole number.", name=name),
            {name: _("Must be a whole number.")},
        ) from None
    high = INT_MAX if high is None else high
    if value < low:
        raise BadRequest(
            _("The parameter %(name)s must be at least %(n)s.", name=name, n=low),
            {name: _("At least %(n)s.", n=low)},
        )
    if value > high:
        raise BadRequest(
            _("The parameter %(name)s must be at most %(n)s.", name=name, n=high),
            {name: _("At most %(n)s.", n=high)},
        )
    return value


# --- times -----------------------------------------------------------------------------------


def local_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("BABEL_DEFAULT_TIMEZONE") or "Asia/Shanghai")


class OutOfRange(ValueError):
    """A time outside YEARS."""


def parse_time(text: str) -> datetime:
    """ISO 8601 → naive UTC. Without an offset the time is local (the county's zone). Raises
    ValueError when it is not a time, OutOfRange outside YEARS (year 1 or 9999 has no UTC
    equivalent in some zones, and no notice or alert is dated then)."""
    value = datetime.fromisoformat(text.strip())
    if not YEARS[0] <= value.year <= YEARS[1]:
        raise OutOfRange(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=local_zone())
    return value.astimezone(UTC).replace(tzinfo=None)


def format_time(value: datetime | None) -> str | None:
    """Naive UTC → ISO 8601 in the county's zone with its offset (seconds precision)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC).astimezone(local_zone()).isoformat(timespec="seconds")
