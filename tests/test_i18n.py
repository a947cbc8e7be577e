"""The Chinese catalog covers every message, and the compiled catalog matches its source.

Refresh the catalog after adding or changing strings:

    .venv/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o /tmp/messages.pot .
    .venv/bin/pybabel update -i /tmp/messages.pot -d server/translations -l zh
    (translate the new entries, clear any "fuzzy" flag)
    .venv/bin/pybabel compile -d server/translations -D messages
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions, World

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "server" / "translations" / "zh" / "LC_MESSAGES"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")

Key = str | tuple[str, ...]


def _key(value: object) -> Key:
    """A msgid or msgstr as a hashable value (plural forms come as lists or tuples)."""
    return value if isinstance(value, str) else tuple(value)  # type: ignore[arg-type]


def _source_messages() -> set[str]:
    method_map, options_map = parse_mapping_cfg(io.StringIO((ROOT / "babel.cfg").read_text()))
    keywords = {"_": None, "gettext": None, "lazy_gettext": None, "_l": None, "ngettext": (1, 2)}
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def _po() -> Catalog:
    with (CATALOG / "messages.po").open("rb") as fh:
        return read_po(fh, locale="zh")


def _singular(msgid: Key) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def _forms(msgstr: object) -> list[str]:
    return [msgstr] if isinstance(msgstr, str) else list(msgstr)  # type: ignore[call-overload]


def test_every_message_has_a_chinese_translation() -> None:
    translated = {_singular(m.id) for m in _po() if m.id and not m.fuzzy and all(_forms(m.string))}
    missing = sorted(_source_messages() - translated)
    assert missing == [], f"{len(missing)} messages lack a zh translation: {missing[:20]}"


def test_no_entry_is_fuzzy() -> None:
    # gettext ignores fuzzy entries: the page would silently show English.
    fuzzy = [m.id for m in _po() if m.id and m.fuzzy]
    assert fuzzy == []


def test_translations_keep_every_placeholder() -> None:
    wrong = []
    for m in _po():
        if not m.id:
            continue
        wanted = sorted(PLACEHOLDER.findall(_singular(m.id)))
        forms = _forms(m.string)
        if isinstance(m.id, tuple):
            assert len(forms) == 1, f"Chinese has one plural form: {m.id!r}"
            wanted = sorted(set(PLACEHOLDER.findall(m.id[0])) | set(PLACEHOLDER.findall(m.id[1])))
        for form in forms:
            if sorted(PLACEHOLDER.findall(form)) != wanted:
                wrong.append((m.id, form))
    assert wrong == []


def test_compiled_catalog_is_up_to_date() -> None:
    source = {_key(m.id): _key(m.string) for m in _po() if m.id and not m.fuzzy}
    with (CATALOG / "messages.mo").open("rb") as fh:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(fh) if m.id}
    assert compiled == source, "run: pybabel compile -d server/translations -D messages"


def test_default_language_is_chinese_and_english_is_available(app: Flask) -> None:
    client = app.test_client()
    zh = client.get("/admin/login").get_data(as_text=True)
    assert 'lang="zh-CN"' in zh and "登录" in zh and "Log in" not in zh
    # The same client and app context: each request chooses its language anew.
    en = client.get("/admin/login?lang=en").get_data(as_text=True)
    assert 'lang="en"' in en and "Log in" in en and "登录" not in en


def test_residents_page_is_chinese_by_default(app: Flask) -> None:
    html = app.test_client().get("/").get_data(as_text=True)
    assert "村务公告" in html and "Village notices" not in html


def test_language_choice_is_remembered_and_messages_follow_it(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    wrong = auth.login(world.admin.username, "not the password").get_data(as_text=True)
    assert "用户名或密码错误。" in wrong
    client.get("/admin/login?lang=en")  # the cookie keeps the choice
    assert "Log in" in client.get("/admin/login").get_data(as_text=True)
    wrong = auth.login(world.admin.username, "not the password").get_data(as_text=True)
    assert "Wrong username or password." in wrong and "用户名" not in wrong
    back = client.get("/admin/login?lang=zh").get_data(as_text=True)
    assert 'lang="zh-CN"' in back and "登录" in back
