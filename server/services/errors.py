"""Errors the services raise; the admin turns them into messages, the API into JSON."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: `message` is for people, `status` for HTTP."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(ServiceError):
    """Input that cannot be saved; `errors` maps each field to what is wrong with it."""

    status = 422

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class PermissionDenied(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    """The action does not fit the current state (approving twice, publishing a draft...)."""

    status = 409
