"""The OpenAPI description: valid OpenAPI 3.1, and in step with the routes."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from server.api.openapi import spec


def test_served_without_a_token_and_valid(client: FlaskClient) -> None:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    doc = r.get_json()
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": "/api/v1"}]
    validate(doc)  # raises on an invalid document


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_every_route_is_described_and_nothing_else(app: Flask) -> None:
    routes: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        routes |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes, "no API routes found"
    assert _documented(spec()) == routes


def test_path_parameters_are_declared() -> None:
    doc = spec()
    for path, item in doc["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, op in item.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (method, path)


def test_error_statuses_used_by_the_api_are_described() -> None:
    doc = spec()
    post = doc["paths"]["/notices"]["post"]["responses"]
    assert {"201", "400", "401", "413", "415", "422"} <= set(post)
    approve = doc["paths"]["/notices/{ref}/approve"]["post"]["responses"]
    assert {"403", "404", "409"} <= set(approve)
