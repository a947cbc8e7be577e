"""Provision a benchmark county fast: regions, three users with API tokens, N screens.

Regions and users go through the services (as an admin would create them). The screens are
inserted in bulk, each with a real device token hashed as services.screens does it (only the
SHA-256 is stored; the plain tokens go to the output file for the simulated screens) — one
`provision()` call and commit per screen would take minutes at 10,000.

Run with the server's environment (CUNPING_INSTANCE, DATABASE_URL), after `cunping db upgrade`:

    python bench/provision.py --screens 10000 --towns 20 --villages 25 --out secrets.json

The output: {"county": code, "editor", "reviewer", "alerter": API tokens, "editor_login":
[username, password], "screens": [token, ...]}.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COUNTY = "LOAD0"
PASSWORD = "bench-password-1"
CHUNK = 2000


def provision(n: int, towns: int, villages: int) -> dict[str, Any]:
    """Create the county and its screens in the current app context; returns the secrets."""
    from sqlalchemy import insert

    from server.extensions import db
    from server.models import Role, Screen
    from server.services import regions, users
    from server.services.notices import CODE_ALPHABET, CODE_LENGTH
    from server.services.screens import _new_token, hash_secret

    county = regions.create(None, COUNTY, "压测县")
    leaves = []
    for t in range(1, towns + 1):
        town = regions.create(None, f"LOAD{t:02d}", f"压测{t}镇", county)
        for v in range(1, villages + 1):
            leaves.append(regions.create(None, f"LOAD{t:02d}-{v:02d}", f"压测{t}镇{v}村", town))
    editor = users.create(None, "bench_editor", PASSWORD, grants=[(Role.EDITOR, county)])
    reviewer = users.create(None, "bench_reviewer", PASSWORD, grants=[(Role.REVIEWER, county)])
    alerter = users.create(None, "bench_alerter", PASSWORD, grants=[(Role.ALERT, county)])
    out: dict[str, Any] = {"county": COUNTY, "editor_login": ["bench_editor", PASSWORD]}
    for key, user in (("editor", editor), ("reviewer", reviewer), ("alerter", alerter)):
        out[key] = users.create_token(user, "bench")[1]

    tokens: list[str] = []
    codes: set[str] = set()
    rows: list[dict[str, Any]] = []
    for i in range(n):
        code = ""
        while not code or code in codes:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        codes.add(code)
        prefix, token = _new_token()
        tokens.append(token)
        region = leaves[i % len(leaves)]
        rows.append({"code": code, "name": f"压测屏{i + 1}", "region_id": region.id,
                     "token_hash": hash_secret(token), "token_prefix": prefix,
                     "width": 1920, "height": 1080, "orientation": "landscape", "state": {},
                     "online": False})
    for start in range(0, len(rows), CHUNK):
        db.session.execute(insert(Screen), rows[start:start + CHUNK])
    db.session.commit()
    out["screens"] = tokens
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screens", type=int, required=True)
    parser.add_argument("--towns", type=int, default=20)
    parser.add_argument("--villages", type=int, default=25, help="villages per town")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from server import create_app

    began = time.monotonic()
    app = create_app()
    with app.app_context():
        result = provision(args.screens, args.towns, args.villages)
    args.out.write_text(json.dumps(result))
    print(f"provisioned {args.screens} screens in {args.towns * args.villages} villages in "
          f"{time.monotonic() - began:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
