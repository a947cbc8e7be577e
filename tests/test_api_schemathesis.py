"""The OpenAPI spec is the truth: schemathesis generates requests from /api/v1/openapi.json for
every operation, as an administrator, an editor and an alert user of the demo county, valid
and invalid ones, and checks every answer against the spec — no server error, every status
code, content type, body and header documented, `Allow` on 405 — with zero failures.

Left out, and why: `positive_data_acceptance` ("schema-valid data must be accepted"). The spec
cannot say which region, category or image codes exist, so schema-valid references to ones
that do not are refused with 400/422 by design; every other check runs. Examples are
derandomized (the same cases on every run) and bounded to keep the suite's time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from server import create_app

EXAMPLES = 25  # per operation and user


@pytest.fixture(scope="module")
def county() -> Iterator[tuple[Flask, dict[str, str]]]:
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"INSTANCE_PATH": folder, "SECRET_KEY": "s" * 40,
                          "RATELIMIT_STORAGE_URI": "memory://", "PUBLIC_BASE_URL": "http://cp.test",
                          "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/st.db"})
        with app.app_context():
            from flask_migrate import upgrade

            from server import demo
            from server.extensions import db
            from server.services import users

            upgrade()
            demo.load()
            tokens = {name: users.create_token(users.by_username(name), "schemathesis")[1]
                      for name in ("admin", "county_editor", "county_alert")}
            db.session.remove()
        yield app, tokens
        with app.app_context():
            db.engine.dispose()


def failures_of(app: Flask, token: str) -> tuple[list[str], int]:
    """What schemathesis found wrong, and how many requests it made."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    found: list[str] = []
    calls = [0]
    for result, mode in ((r, m) for r in schema.get_all_operations()
                         for m in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
        operation = result.ok()

        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck),
                  phases=[Phase.explicit, Phase.generate])
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            calls[0] += 1
            with app.app_context():
                case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                                       excluded_checks=[positive_data_acceptance])

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # a FailureGroup is an exception group
            titles = [line for line in str(exc).splitlines() if line.startswith("- ")]
            found += [f"{operation.method.upper()} {operation.path} ({mode.value}): {t[2:]}"
                      for t in titles or str(exc).splitlines()[:1]]
    return found, calls[0]


@pytest.mark.parametrize("user", ["admin", "county_editor", "county_alert"])
def test_the_api_answers_as_its_spec_says(county: tuple[Flask, dict[str, str]],
                                          user: str) -> None:
    app, tokens = county
    found, calls = failures_of(app, tokens[user])
    assert calls > 100  # every operation was exercised
    assert found == []
