"""The API's picture upload: real pictures are stored and attached; anything else is refused."""

from __future__ import annotations

import io
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image as PILImage

from server.services import images
from tests.conftest import World
from tests.test_api import Api, error_of, notice_json


def png(width: int = 64, height: int = 48, color: str = "red") -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def upload(api: Api, data: bytes, name: str = "photo.png", field: str = "file") -> Any:
    return api.client.post(
        "/api/v1/images",
        data={field: (io.BytesIO(data), name)},
        content_type="multipart/form-data",
        headers=api.headers,
    )


def test_upload_and_attach(client: FlaskClient, world: World, app: Flask) -> None:
    client.set_cookie("lang", "en")
    api = Api(client, world.village_editor)
    r = upload(api, png())
    assert r.status_code == 201, r.get_data(as_text=True)
    img = r.get_json()
    assert (img["width"], img["height"]) == (64, 48)
    stored = images.by_filename(img["url"].rsplit("/", 1)[1])
    assert stored is not None and stored.id == img["id"]
    assert img["url"] == "http://cp.test/media/" + stored.filename
    assert images.path_of(stored).exists()

    second = upload(api, png(color="blue")).get_json()
    n = api.post("/notices", notice_json(image_ids=[img["id"], second["id"]]))
    assert n.status_code == 201
    assert [i["id"] for i in n.get_json()["revision"]["images"]] == [img["id"], second["id"]]
    # PATCH keeps the pictures unless image_ids is given.
    ref = f"/notices/{n.get_json()['id']}"
    assert len(api.patch(ref, {"title": "新标题"}).get_json()["revision"]["images"]) == 2
    assert api.patch(ref, {"image_ids": []}).get_json()["revision"]["images"] == []


def test_non_image_is_422(client: FlaskClient, world: World) -> None:
    client.set_cookie("lang", "en")
    api = Api(client, world.village_editor)
    err = error_of(upload(api, b"<script>alert(1)</script>", "evil.png"), 422)
    assert "file" in err["fields"]
    err = error_of(upload(api, b"%PDF-1.4 not a picture", "doc.pdf"), 422)
    assert "file" in err["fields"]
    err = error_of(upload(api, b"", "empty.png"), 422)
    assert "file" in err["fields"]
    err = error_of(upload(api, png(), field="picture"), 422)
    assert "file" in err["fields"]


def test_oversized_picture_is_413(client: FlaskClient, world: World, app: Flask) -> None:
    client.set_cookie("lang", "en")
    api = Api(client, world.village_editor)
    app.config["MAX_IMAGE_BYTES"] = 1024
    big = png(400, 400, "white") + b"\0" * 2048
    err = error_of(upload(api, big), 413)
    assert "file" in err["fields"] and "MB" in err["message"]
    # Larger than the whole request limit: refused before it is read.
    app.config["MAX_CONTENT_LENGTH"] = 4096
    error_of(upload(api, b"\0" * 8192), 413)


def test_upload_needs_multipart_a_token_and_an_editor(client: FlaskClient, world: World) -> None:
    client.set_cookie("lang", "en")
    api = Api(client, world.village_editor)
    error_of(api.post("/images", {"file": "x"}), 415)
    error_of(client.post("/api/v1/images", data={"file": (io.BytesIO(png()), "a.png")}), 401)
    reviewer = Api(client, world.village_reviewer)
    error_of(upload(reviewer, png()), 403)
