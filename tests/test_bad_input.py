"""Bad input at the service level: every attempt is refused with a clear, per-field message,
and nothing already saved is lost (the saved revision's fields are unchanged afterwards)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from html.parser import HTMLParser

import pytest
from flask import Flask, render_template_string
from PIL import Image as PILImage
from sqlalchemy import func, select

from server.extensions import db
from server.models import Image, Notice, NoticeStatus, Revision, RevisionState
from server.models.base import utcnow
from server.services import images, markup, notices
from server.services.errors import Conflict, ValidationError
from server.services.notices import BODY_MAX, TITLE_MAX, NoticeInput
from tests.conftest import World

TITLE = "2025年3月村级财务收支公开"
BODY = "| 项目 | 金额（元） |\n|---|---:|\n| 路灯电费 | 1,230.00 |"


def data(**kw: object) -> NoticeInput:
    fields: dict[str, object] = {
        "title": TITLE,
        "body": BODY,
        "category": "finance",
        "targets": ["V11"],
        "duration_s": 30,
    }
    fields.update(kw)
    return NoticeInput(**fields)  # type: ignore[arg-type]


def snapshot(n: Notice) -> dict[str, object]:
    """Everything saved about a notice, read back from the database."""
    db.session.rollback()
    db.session.expire_all()
    revs = db.session.scalars(
        select(Revision).where(Revision.notice_id == n.id).order_by(Revision.number)
    ).all()
    return {
        "status": n.status,
        "live": n.live_revision_id,
        "pending": n.pending_revision_id,
        "revisions": [
            (
                r.number,
                r.state,
                r.title,
                r.body,
                r.category.key,
                [t.code for t in r.targets],
                r.publish_at,
                r.expire_at,
                r.duration_s,
                r.pinned,
                [i.id for i in r.images],
                r.reject_reason,
            )
            for r in revs
        ],
    }


def notice_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Notice)) or 0


@pytest.fixture(params=["draft", "submitted", "published"])
def saved(request: pytest.FixtureRequest, world: World) -> Notice:
    """A notice already saved by the village editor, in each state an edit can meet."""
    n = notices.create(world.village_editor, data())
    if request.param in ("submitted", "published"):
        notices.submit(world.village_editor, n)
    if request.param == "published":
        notices.approve(world.village_reviewer, n)
        notices.publish(world.village_editor, n)
    return n


def later(hours: float) -> datetime:
    return utcnow() + timedelta(hours=hours)


# field, bad input
BAD: list[tuple[str, dict[str, object]]] = [
    ("title", {"title": ""}),
    ("title", {"title": "   \t "}),
    ("title", {"title": "长" * (TITLE_MAX + 1)}),
    ("title", {"title": "第一行\n第二行"}),
    ("title", {"title": "第一行\r\n第二行"}),
    ("body", {"body": ""}),
    ("body", {"body": "\n\n  \n"}),
    ("body", {"body": "字" * (BODY_MAX + 1)}),
    ("targets", {"targets": []}),
    ("targets", {"targets": ["V21"]}),  # another town: outside the village editor's subtree
    ("targets", {"targets": ["V11", "C0"]}),  # one target above the editor's village
    ("targets", {"targets": ["NOPE"]}),
    ("targets", {"targets": [999_999]}),
    ("category", {"category": None}),
    ("category", {"category": "no_such_category"}),
    ("category", {"category": 999_999}),
    ("expire_at", {"publish_at": later(48), "expire_at": later(24)}),
    ("expire_at", {"publish_at": datetime(2031, 5, 1, 1), "expire_at": datetime(2031, 5, 1, 1)}),
    ("expire_at", {"expire_at": later(-1)}),
    ("duration_s", {"duration_s": 4}),
    ("duration_s", {"duration_s": 601}),
    ("duration_s", {"duration_s": -20}),
    ("duration_s", {"duration_s": "abc"}),
    ("duration_s", {"duration_s": None}),
    ("images", {"image_ids": [999_999]}),
]


@pytest.mark.parametrize(("field", "bad"), BAD, ids=[f"{f}-{i}" for i, (f, _b) in enumerate(BAD)])
def test_create_refuses_bad_input(world: World, field: str, bad: dict[str, object]) -> None:
    before = notice_count()
    with pytest.raises(ValidationError) as exc:
        notices.create(world.village_editor, data(**bad))
    assert field in exc.value.errors
    assert exc.value.errors[field].strip()
    assert set(exc.value.errors) == {field}, "only the bad field is blamed"
    assert notice_count() == before


@pytest.mark.parametrize(("field", "bad"), BAD, ids=[f"{f}-{i}" for i, (f, _b) in enumerate(BAD)])
def test_update_refuses_bad_input_and_keeps_what_was_saved(
    world: World, saved: Notice, field: str, bad: dict[str, object]
) -> None:
    before = snapshot(saved)
    with pytest.raises(ValidationError) as exc:
        notices.update(world.village_editor, saved, data(**bad))
    assert field in exc.value.errors
    assert snapshot(saved) == before


def test_every_bad_field_is_named_at_once(world: World) -> None:
    bad = data(title="", body="", category="nope", targets=["NOPE"], duration_s=0)
    with pytest.raises(ValidationError) as exc:
        notices.create(world.village_editor, bad)
    assert set(exc.value.errors) == {"title", "body", "category", "targets", "duration_s"}


def test_inactive_category_is_refused(world: World) -> None:
    from server.services import categories

    cat = next(c for c in categories.active() if c.key == "service")
    categories.set_active(world.admin, cat, False)
    with pytest.raises(ValidationError) as exc:
        notices.create(world.village_editor, data(category="service"))
    assert "category" in exc.value.errors


def test_limits_are_inclusive(world: World) -> None:
    n = notices.create(
        world.village_editor, data(title="长" * TITLE_MAX, body="字" * BODY_MAX, duration_s=600)
    )
    assert len(n.current.title) == TITLE_MAX and len(n.current.body) == BODY_MAX
    assert n.current.duration_s == 600


def test_whitespace_around_title_and_body_is_trimmed(world: World) -> None:
    n = notices.create(world.village_editor, data(title="  标题  ", body="\n正文\n\n"))
    assert n.current.title == "标题" and n.current.body == "正文"


# --- HTML and script --------------------------------------------------------------------------

SCRIPT_TITLE = '<script>alert("t")</script><b>标题</b>'
SCRIPT_BODY = (
    "<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
    '**加粗** <a href="javascript:alert(3)">x</a> [y](javascript:alert(4))'
)


def test_html_in_title_and_body_is_stored_as_text_and_shown_inert(app: Flask, world: World) -> None:
    n = notices.create(world.village_editor, data(title=SCRIPT_TITLE, body=SCRIPT_BODY))
    db.session.expire_all()
    assert n.current.title == SCRIPT_TITLE  # kept exactly as typed
    assert n.current.body == SCRIPT_BODY
    html = str(markup.to_html(n.current.body))
    tags = TagCollector.of(html)
    assert {tag for tag, _attrs in tags} == {"p", "strong"}  # no script, img or link
    assert all(not attrs for _tag, attrs in tags)
    assert "<strong>加粗</strong>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    with app.test_request_context():
        page = render_template_string("<h1>{{ title }}</h1>", title=n.current.title)
    assert "<script>" not in page and "&lt;script&gt;" in page


class TagCollector(HTMLParser):
    """The real tags (and their attributes) in a piece of HTML, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    @classmethod
    def of(cls, html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
        parser = cls()
        parser.feed(html)
        parser.close()
        return parser.tags


# --- the workflow refuses what does not fit the state ------------------------------------------


def test_approving_the_same_revision_twice(world: World) -> None:
    n = notices.create(world.village_editor, data())
    notices.submit(world.village_editor, n)
    notices.approve(world.village_reviewer, n, revision_number=1)
    before = snapshot(n)
    for reviewer in (world.village_reviewer, world.town_reviewer):
        with pytest.raises(Conflict):
            notices.approve(reviewer, n, revision_number=1)
        with pytest.raises(Conflict):
            notices.approve(reviewer, n)
    assert snapshot(n) == before


def test_approving_a_stale_revision_number(world: World) -> None:
    n = notices.create(world.village_editor, data())
    notices.submit(world.village_editor, n)
    with pytest.raises(Conflict):
        notices.approve(world.village_reviewer, n, revision_number=2)
    assert n.status == NoticeStatus.SUBMITTED


@pytest.mark.parametrize("reason", ["", "   ", "\n\t", "理" * 501])
def test_rejecting_needs_a_reason(world: World, reason: str) -> None:
    n = notices.create(world.village_editor, data())
    notices.submit(world.village_editor, n)
    before = snapshot(n)
    with pytest.raises(ValidationError) as exc:
        notices.reject(world.village_reviewer, n, reason)
    assert "reason" in exc.value.errors
    assert snapshot(n) == before
    assert n.current.state == RevisionState.SUBMITTED


def test_rejecting_a_draft_is_a_conflict(world: World) -> None:
    n = notices.create(world.village_editor, data())
    with pytest.raises(Conflict):
        notices.reject(world.village_reviewer, n, "还没提交")


@pytest.mark.parametrize("state", ["draft", "submitted", "approved"])
def test_withdrawing_what_is_not_published_is_a_conflict(world: World, state: str) -> None:
    n = notices.create(world.village_editor, data())
    if state != "draft":
        notices.submit(world.village_editor, n)
    if state == "approved":
        notices.approve(world.village_reviewer, n)
    before = snapshot(n)
    with pytest.raises(Conflict):
        notices.withdraw(world.village_editor, n, "撤回")
    assert snapshot(n) == before


def test_withdrawing_needs_a_reason(world: World) -> None:
    n = notices.create(world.village_editor, data())
    notices.submit(world.village_editor, n)
    notices.approve(world.village_reviewer, n)
    notices.publish(world.village_editor, n)
    with pytest.raises(ValidationError) as exc:
        notices.withdraw(world.village_editor, n, "  ")
    assert "reason" in exc.value.errors
    assert n.status == NoticeStatus.PUBLISHED


@pytest.mark.parametrize(
    "step",
    [
        lambda w, n: notices.submit(w.village_editor, n),
        lambda w, n: notices.publish(w.village_editor, n),
    ],
    ids=["submit-twice", "publish-unapproved"],
)
def test_out_of_order_steps_are_conflicts(
    world: World, step: Callable[[World, Notice], object]
) -> None:
    n = notices.create(world.village_editor, data())
    notices.submit(world.village_editor, n)
    before = snapshot(n)
    with pytest.raises(Conflict):
        step(world, n)
    assert snapshot(n) == before


def test_publishing_after_the_expiry_passed(world: World) -> None:
    n = notices.create(world.village_editor, data(publish_at=later(-3), expire_at=later(-1)))
    notices.submit(world.village_editor, n)
    notices.approve(world.village_reviewer, n)
    before = snapshot(n)
    with pytest.raises(ValidationError) as exc:
        notices.publish(world.village_editor, n)
    assert "expire_at" in exc.value.errors
    assert snapshot(n) == before and n.status == NoticeStatus.APPROVED


def test_a_failed_edit_of_a_live_notice_leaves_it_on_screens(world: World) -> None:
    n = notices.create(world.village_editor, data())
    notices.submit(world.village_editor, n)
    notices.approve(world.village_reviewer, n)
    notices.publish(world.village_editor, n)
    with pytest.raises(ValidationError):
        notices.update(world.village_editor, n, data(title=""))
    db.session.expire_all()
    assert n.status == NoticeStatus.PUBLISHED and n.pending_revision is None
    assert len(n.revisions) == 1 and n.live_revision is not None
    assert n.live_revision.title == TITLE
    assert notices.live_for_regions([world.village.id]) == [n]


# --- uploads ----------------------------------------------------------------------------------


def picture(fmt: str = "PNG", size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    PILImage.new(mode, size, "red" if mode != "1" else 0).save(out, fmt)
    return out.getvalue()


def image_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Image)) or 0


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"just some text, not a picture",
        b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b"<html><script>alert(1)</script></html>",
        picture("PNG")[:60],  # a truncated PNG
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,  # a PNG signature and nothing else
    ],
    ids=["empty", "text", "pdf", "svg", "html", "truncated-png", "png-signature-only"],
)
def test_non_images_are_refused(world: World, payload: bytes) -> None:
    with pytest.raises(ValidationError) as exc:
        images.save_upload(world.village_editor, io.BytesIO(payload), "x.png")
    assert "images" in exc.value.errors
    assert image_count() == 0


def test_picture_formats_outside_the_list_are_refused(world: World) -> None:
    with pytest.raises(ValidationError) as exc:
        images.save_upload(world.village_editor, io.BytesIO(picture("TIFF")), "scan.tif")
    assert "TIFF" in exc.value.errors["images"]
    assert image_count() == 0


def test_oversized_upload_is_refused(app: Flask, world: World) -> None:
    big = picture("BMP", (200, 200))
    app.config["MAX_IMAGE_BYTES"] = len(big) - 1
    with pytest.raises(ValidationError) as exc:
        images.save_upload(world.village_editor, io.BytesIO(big), "big.bmp")
    assert "images" in exc.value.errors
    assert image_count() == 0
    app.config["MAX_IMAGE_BYTES"] = len(big)
    assert images.save_upload(world.village_editor, io.BytesIO(big), "big.bmp").id


@pytest.mark.parametrize(
    ("factor", "warning_filter"),
    [(3, "error"), (1.5, "error"), (1.5, "ignore")],
    ids=["beyond-twice-the-limit", "just-over", "just-over-warnings-ignored"],
)
def test_huge_pixel_images_are_refused(
    app: Flask, world: World, factor: float, warning_filter: str
) -> None:
    """A small file that decodes to a huge picture (a decompression bomb). Pillow raises only
    beyond twice its limit and merely warns below that; production does not turn warnings
    into errors, so the service must refuse on its own."""
    app.config["MAX_IMAGE_PIXELS"] = 1_000_000
    bomb = picture("PNG", (int(1000 * factor), 1000), mode="1")
    assert len(bomb) < 50_000
    with pytest.raises(ValidationError) as exc, warnings.catch_warnings():
        warnings.simplefilter(warning_filter, PILImage.DecompressionBombWarning)  # type: ignore[arg-type]
        images.save_upload(world.village_editor, io.BytesIO(bomb), "bomb.png")
    assert "images" in exc.value.errors
    assert image_count() == 0


def test_exif_is_stripped_and_orientation_applied(world: World) -> None:
    src = PILImage.new("RGB", (64, 32), "blue")
    exif = PILImage.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {2: (36.0, 5.0, 0.0)}  # GPS IFD: latitude
    out = io.BytesIO()
    src.save(out, "JPEG", exif=exif)
    with PILImage.open(io.BytesIO(out.getvalue())) as check:
        assert check.getexif().get(0x010F) == "PhoneMaker"  # the test file really has EXIF

    image = images.save_upload(world.village_editor, io.BytesIO(out.getvalue()), "photo.jpg")
    assert (image.width, image.height) == (32, 64)  # turned upright
    stored = images.path_of(image).read_bytes()
    assert b"PhoneMaker" not in stored and b"Exif" not in stored
    with PILImage.open(io.BytesIO(stored)) as reread:
        assert reread.format == "JPEG"
        assert dict(reread.getexif()) == {}


def test_too_many_images(app: Flask, world: World) -> None:
    ids = [
        images.save_upload(
            world.village_editor, io.BytesIO(picture(size=(10 + i, 10))), f"{i}.png"
        ).id
        for i in range(3)
    ]
    app.config["MAX_IMAGES_PER_NOTICE"] = 2
    n = notices.create(world.village_editor, data(image_ids=ids[:2]))
    before = snapshot(n)
    with pytest.raises(ValidationError) as exc:
        notices.update(world.village_editor, n, data(image_ids=ids))
    assert "images" in exc.value.errors
    assert snapshot(n) == before
