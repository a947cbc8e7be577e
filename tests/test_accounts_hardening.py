"""Passwords that are not the first thing an attacker tries, one user per name whatever its
case, a demo that stays out of production, files for the service user alone, and pictures that
carry nothing but their pixels (issue 10, item 10)."""

from __future__ import annotations

import io
import os
import stat
import subprocess
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image as PILImage
from PIL import PngImagePlugin
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from server import create_app
from server.extensions import db
from server.models import User
from server.services import images, users
from server.services.errors import ValidationError
from tests.conftest import PASSWORD, World
from tests.test_cli import CUNPING, _env, run


@pytest.mark.parametrize("password, why", [
    ("short-one", "at least"),          # 9 characters
    ("newuser2026!", "username"),        # contains the username
    ("NEWUSER-secret", "username"),      # …whatever its case
    ("1234567890", "common"),           # in the shipped list
    ("Password123", "common"),          # …whatever its case
    ("qwertyuiop", "common"),
])
def test_weak_passwords_are_refused(world: World, password: str, why: str) -> None:
    errors = users.new_user_errors("newuser", password)
    assert "password" in errors
    with pytest.raises(ValidationError):
        users.create(world.admin, "newuser", password)
    assert users.by_username("newuser") is None
    if why == "username":  # the same rule for the editor's own name
        password = password.lower().replace("newuser", "CEditor")
    with pytest.raises(ValidationError):
        users.change_password(world.county_editor, PASSWORD, password)


def test_a_good_password_is_taken(world: World) -> None:
    assert users.create(world.admin, "newuser", "柳河镇-值班-2026").username == "newuser"


def test_usernames_are_one_whatever_their_case(world: World) -> None:
    errors = users.new_user_errors("ADMIN", "a-fine-password-7")
    assert "username" in errors
    with pytest.raises(ValidationError):
        users.create(world.admin, "Admin", "a-fine-password-7")
    assert users.authenticate("ADMIN", PASSWORD) == world.admin


def test_the_database_holds_one_user_per_name_whatever_its_case(
    app: Flask, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests creating `Wang` and `wang` at once both pass the service's look-up: the
    unique index on lower(username) refuses the second, and the service says why (no 500)."""
    db.session.add(User(username="ADMIN", password_hash="x"))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
    monkeypatch.setattr(users, "by_username", lambda name: None)  # the look-up raced
    with pytest.raises(ValidationError) as refused:
        users.create(world.admin, "Admin", "a-fine-password-7")
    assert "username" in refused.value.errors
    assert db.session.scalar(select(func.count()).select_from(User).where(
        func.lower(User.username) == "admin")) == 1


def test_the_migration_names_users_whose_names_differ_only_in_case(app: Flask) -> None:
    """A database from before the rule may hold `Wang` and `wang`: the upgrade stops, naming
    them, and goes through once one is renamed."""
    assert run(app, "db", "downgrade", "0012")[0] == 0
    db.session.add_all([User(username="Wang", password_hash="x"),
                        User(username="wang", password_hash="x")])
    db.session.commit()
    code, out = run(app, "db", "upgrade")
    assert code == 1 and "wang (2 users)" in out
    db.session.remove()
    db.session.execute(update(User).where(User.username == "Wang").values(username="wang2"))
    db.session.commit()
    assert run(app, "db", "upgrade")[0] == 0
    db.session.add(User(username="WANG", password_hash="x"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_the_demo_refuses_production(tmp_path: Path) -> None:
    done = subprocess.run([str(CUNPING), "demo"], capture_output=True, text=True, timeout=120,
                          env=_env(tmp_path, CUNPING_ENV="production", SECRET_KEY="x" * 40),
                          stdin=subprocess.DEVNULL)
    assert done.returncode != 0 and "production" in done.stderr
    assert "cunping-demo" not in done.stdout


def test_the_instance_folder_and_database_are_the_service_users_alone(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        app = create_app({"INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "k" * 40})
    finally:
        os.umask(old)
    instance = Path(app.instance_path)
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    assert stat.S_IMODE((instance / "cunping.db").stat().st_mode) == 0o600


def _jpeg_with_metadata() -> bytes:
    picture = PILImage.new("RGB", (40, 30), (200, 30, 30))
    exif = PILImage.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x8825] = {1: "N", 2: (39.0, 54.0, 0.0)}  # GPS
    out = io.BytesIO()
    picture.save(out, "JPEG", exif=exif, comment=b"owner: Wang, phone 13800000000",
                 xmp=b"<x:xmpmeta><dc:creator>13800000000</dc:creator></x:xmpmeta>",
                 icc_profile=b"ICC-of-CameraMaker " * 8)
    return out.getvalue()


def _png_with_metadata() -> bytes:
    picture = PILImage.new("RGBA", (40, 30), (20, 30, 200, 128))
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Wang, 13800000000")
    info.add_itxt("Comment", "王, 13800000000", zip=True)
    exif = PILImage.Exif()
    exif[0x010F] = "CameraMaker"
    out = io.BytesIO()
    picture.save(out, "PNG", pnginfo=info, exif=exif, icc_profile=b"ICC-of-CameraMaker " * 8)
    return out.getvalue()


@pytest.mark.parametrize("make", [_jpeg_with_metadata, _png_with_metadata])
def test_uploaded_pictures_keep_only_their_pixels(app: Flask, world: World, make) -> None:  # type: ignore[no-untyped-def]
    data = make()
    assert b"CameraMaker" in data
    saved = images.save_upload(world.county_editor, io.BytesIO(data), "photo")
    path = Path(app.config["UPLOAD_FOLDER"]) / saved.filename
    stored = path.read_bytes()
    assert b"13800000000" not in stored and b"CameraMaker" not in stored
    with PILImage.open(io.BytesIO(stored)) as img:
        assert not img.getexif() and "comment" not in img.info and "Author" not in img.info
        assert "icc_profile" not in img.info and "xmp" not in img.info  # the ICC profile too
        assert "Comment" not in img.info
        assert img.size == (40, 30)
