"""Uploaded pictures: size-limited, opened and re-encoded by Pillow (which strips metadata and
anything that is not a picture), stored under their content hash."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import IO

from flask import current_app
from flask_babel import gettext as _
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError
from sqlalchemy import select

from server.extensions import db
from server.models import Image, Revision, Role, User
from server.models.notices import RevisionImage
from server.services import permissions
from server.services.errors import ValidationError

ALLOWED_FORMATS = {"JPEG", "PNG", "GIF", "WEBP", "BMP"}
MAX_SIDE = 1920  # larger pictures are scaled down: screens are at most 1920 px wide


def save_upload(actor: User, stream: IO[bytes], original_name: str = "") -> Image:
    """Check and store one uploaded picture; raise ValidationError with a clear reason."""
    limit = current_app.config["MAX_IMAGE_BYTES"]
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ValidationError(
            {"images": _("The picture is larger than %(mb)s MB.", mb=limit // (1024 * 1024))}
        )
    if not data:
        raise ValidationError({"images": _("The file is empty.")})
    PILImage.MAX_IMAGE_PIXELS = current_app.config["MAX_IMAGE_PIXELS"]
    try:
        with PILImage.open(io.BytesIO(data)) as probe:
            fmt = probe.format
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: refuse those too.
            if probe.width * probe.height > PILImage.MAX_IMAGE_PIXELS:
                raise PILImage.DecompressionBombError(f"{probe.size} is too many pixels")
            probe.verify()
        if fmt not in ALLOWED_FORMATS:
            raise ValidationError({"images": _("%(fmt)s pictures are not accepted.", fmt=fmt)})
        with PILImage.open(io.BytesIO(data)) as img:
            img.load()
            picture = ImageOps.exif_transpose(img)
    except ValidationError:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        PILImage.DecompressionBombError,
        PILImage.DecompressionBombWarning,  # raised when warnings are errors (tests)
    ):
        raise ValidationError(
            {"images": _("The file is not a picture Cunping can read.")}
        ) from None
    picture.thumbnail((MAX_SIDE, MAX_SIDE))
    has_alpha = (
        picture.mode in ("RGBA", "LA", "P") and "transparency" in picture.info
    ) or picture.mode in ("RGBA", "LA")
    out = io.BytesIO()
    clean = picture.convert("RGBA" if has_alpha else "RGB")
    # Only the pixels leave: no EXIF (a phone's GPS position, its owner), no JPEG comment, no
    # PNG text, no ICC profile (pictures here are shown on TVs and phones in sRGB anyway).
    clean.info = {}
    if has_alpha:
        clean.save(out, "PNG", optimize=True)
        ext, mime = "png", "image/png"
    else:
        clean.save(out, "JPEG", quality=85, optimize=True)
        ext, mime = "jpg", "image/jpeg"
    encoded = out.getvalue()
    digest = hashlib.sha256(encoded).hexdigest()
    existing = db.session.scalar(select(Image).where(Image.sha256 == digest))
    if existing is not None:
        return existing
    filename = f"{digest[:32]}.{ext}"
    path = Path(current_app.config["UPLOAD_FOLDER"]) / filename
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(encoded)
    tmp.replace(path)
    image = Image(
        sha256=digest,
        filename=filename,
        mime=mime,
        width=picture.width,
        height=picture.height,
        size=len(encoded),
        original_name=original_name[:255],
        uploaded_by_id=actor.id,
    )
    db.session.add(image)
    db.session.commit()
    return image


def may_use(actor: User, image: Image) -> bool:
    """Whether `actor` may put `image` in a notice: they uploaded it, or its uploader works
    inside the actor's regions, or it is in a notice the actor can see (editing a colleague's
    notice keeps its pictures). Another town's picture id, guessed, is refused."""
    if image.uploaded_by_id == actor.id:
        return True
    uploader = db.session.get(User, image.uploaded_by_id) if image.uploaded_by_id else None
    if uploader is not None and any(
            permissions.covers(actor, Role.EDITOR, [g.region]) for g in uploader.grants):
        return True
    used_for = db.session.scalars(
        select(Revision).join(RevisionImage, RevisionImage.revision_id == Revision.id)
        .where(RevisionImage.image_id == image.id).limit(50))
    return any(permissions.sees(actor, rev.targets) for rev in used_for)


def path_of(image: Image) -> Path:
    return Path(current_app.config["UPLOAD_FOLDER"]) / image.filename


def by_filename(filename: str) -> Image | None:
    return db.session.scalar(select(Image).where(Image.filename == filename))
