"""API: regions (the county → town → village tree), read only."""

from __future__ import annotations

from flask import Response, request
from sqlalchemy import select

from server.api import bp, serializers
from server.api.envelope import BadRequest, ok
from server.extensions import db
from server.models import Region
from server.services import regions
from server.services.errors import NotFound


def _all_by_id() -> dict[int, Region]:
    return {r.id: r for r in db.session.scalars(select(Region))}


def _tree_order(region: Region) -> list[int]:
    return [int(x) for x in region.path.strip("/").split("/") if x]


@bp.get("/regions")
def list_regions() -> Response:
    """Every region in tree order (parents before children), or those under `?under=<code>`."""
    by_id = _all_by_id()
    chosen = list(by_id.values())
    if code := request.args.get("under"):
        try:
            root = regions.get(code)
        except NotFound as exc:
            raise BadRequest(exc.message, {"under": exc.message}) from None
        chosen = [r for r in chosen if root.contains(r)]
    chosen.sort(key=_tree_order)
    return ok({"items": [serializers.region(r, by_id) for r in chosen]})


@bp.get("/regions/<code>")
def get_region(code: str) -> Response:
    """One region with its direct children."""
    region = regions.get(code)
    by_id = _all_by_id()
    return ok(
        {
            **serializers.region(region, by_id),
            "children": [serializers.region(c, by_id) for c in region.children],
        }
    )
