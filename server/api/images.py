"""API: picture uploads. A notice refers to its pictures by id (`image_ids`)."""

from __future__ import annotations

import os
from typing import IO

from flask import Response, current_app, request
from flask_babel import gettext as _

from server.api import bp, serializers
from server.api.auth import api_user
from server.api.envelope import UnsupportedMediaType, ok
from server.errors import json_error
from server.models import Role
from server.services import images
from server.services.errors import PermissionDenied, ValidationError

FIELD = "file"


def _size(stream: IO[bytes]) -> int:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


@bp.post("/images")
def upload_image() -> Response:
    """One picture as multipart/form-data in the field `file`; checked and re-encoded."""
    user = api_user()
    if not (user.has_role(Role.EDITOR) or user.has_role(Role.ADMIN)):
        raise PermissionDenied(_("Only editors may upload pictures."))
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            _("Send the picture as multipart/form-data in the field %(name)s.", name=FIELD)
        )
    upload = request.files.get(FIELD)
    if upload is None or not upload.filename:
        raise ValidationError({FIELD: _("Send the picture in the field %(name)s.", name=FIELD)})
    limit = current_app.config["MAX_IMAGE_BYTES"]
    if _size(upload.stream) > limit:
        message = _("The picture is larger than %(mb)s MB.", mb=limit // (1024 * 1024))
        response, status = json_error(413, message, fields={FIELD: message})
        response.status_code = status
        return response
    try:
        image = images.save_upload(user, upload.stream, upload.filename or "")
    except ValidationError as exc:  # the service names the field "images"; ours is "file"
        raise ValidationError({FIELD: " ".join(exc.errors.values())}) from None
    return ok(serializers.image(image), 201)
