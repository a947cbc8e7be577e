"""The load harness (bench/load.py) at a small N: it works end to end, not how fast it is.

40 simulated screens (bench/lightclient.py: the player's protocol over raw WebSocket frames,
in two worker processes) against the real server as production runs it, and the same screens
against the bare Flask-SocketIO server: every screen receives the published notice, the alert
(acknowledged in the API's delivery report), and after a server restart comes back holding the
notice published while the server was down. The figures are benchmark targets, not asserted
here (docs/performance.md); the results go to a temporary folder, never into docs/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import load
from tests.conftest import BACKENDS

ROOT = Path(__file__).resolve().parents[1]
SCREENS = 40


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench-results")
    database = "postgres" if "postgres" in BACKENDS else "sqlite"
    env = {**os.environ,
           # A gunicorn worker waits this long for open WebSockets before it exits on SIGTERM;
           # the restart is what is tested, not the wait (production keeps its own setting).
           "CUNPING_GRACEFUL_TIMEOUT": "3"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), "--screens", str(SCREENS),
         "--scenarios", "publish,alert,reconnect", "--db", database, "--towns", "4",
         "--villages", "5", "--settle", "1", "--idle", "2", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    files = sorted(out.glob("load-*.json"))
    assert files, f"no results written:\n{done.stdout}\n{done.stderr[-6000:]}"
    data: dict[str, Any] = json.loads(files[-1].read_text())
    assert done.returncode == 0, f"{data.get('error')}\n{done.stderr[-6000:]}"
    assert (files[-1].with_suffix(".md")).read_text().startswith("| measured |")
    return data


def test_every_screen_gets_the_notice_from_the_app_and_the_bare_server(
        report: dict[str, Any]) -> None:
    app, bare = report["results"]["app"], report["results"]["bare"]
    assert app["connect"]["screens"] == SCREENS
    assert app["memory"]["idle_cpu_share"] >= 0 and bare["memory"]["idle_cpu_share"] >= 0
    for side in (app, bare):
        publish = side["publish"]
        assert publish["all_reached"], publish
        assert publish["reached"] == SCREENS and publish["missing"] == 0
        assert 0 < publish["p50_ms"] <= publish["p99_ms"] <= publish["max_ms"]
    # The bare server sends an event of the app's size, so the ratio compares like with like.
    assert bare["publish"]["event_bytes"] == app["publish"]["event_bytes"] > 500
    assert report["ratios"]["p99"] is not None
    assert report["ratios"]["memory_per_connection"] is not None


def test_every_screen_acknowledges_the_alert(report: dict[str, Any]) -> None:
    alert = report["results"]["app"]["alert"]
    assert alert["received"] == SCREENS and alert["missing"] == 0
    assert alert["acknowledged"] == alert["targeted"] == SCREENS
    assert alert["all_acknowledged_s"] is not None


def test_after_a_restart_every_screen_is_back_at_the_new_revision(
        report: dict[str, Any]) -> None:
    storm = report["results"]["app"]["reconnect"]
    assert storm["missed"] == 0
    assert storm["at_revision"] == SCREENS
    assert storm["connected"] == SCREENS
    assert storm["reconnects"] >= SCREENS
    assert storm["admin"]["errors"] == 0
    assert sum(page["n"] for page in storm["admin"]["pages"].values()) >= 1


def test_the_report_names_the_machine_and_the_command(report: dict[str, Any]) -> None:
    assert report["machine"]["nproc"] >= 1
    assert report["machine"]["python"]
    assert "bench/load.py" in report["command"] and f"--screens {SCREENS}" in report["command"]
    assert report["error"] is None


def test_update_docs_replaces_only_its_own_block(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    docs.write_text("# Performance\n\n## One screen\n\ntext\n\n## Scale\n\nprose kept\n\n"
                    "## Later\n\nmore\n")
    report = {"finished": "2026-12-02T00:00:00+00:00", "screens": 10, "serving": "gunicorn",
              "database": "postgres", "client_procs": 2, "command": "bench/load.py -n 10",
              "machine": {"nproc": 2, "cpu": "cpu", "memory_gib": 1.0, "os": "os",
                          "kernel": "k", "python": "3.11", "commit": "abc"}}
    load.update_docs(docs, report, "| first |")
    load.update_docs(docs, report, "| second |")
    text = docs.read_text()
    assert text.count(load.BEGIN) == 1 and "| second |" in text and "| first |" not in text
    assert "prose kept" in text and "## Later\n\nmore" in text and "## One screen" in text
    assert text.index(load.BEGIN) < text.index("## Later")
    load.update_docs(docs, {**report, "scenarios": ["redis"]}, "| two processes |")
    load.update_docs(docs, report, "| third |")
    text = docs.read_text()
    assert "| two processes |" in text and "| third |" in text and "| second |" not in text
    assert text.index("| third |") < text.index("| two processes |") < text.index("## Later")


def test_percentiles_use_the_nearest_rank() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1 … 100 ms
    assert load.percentiles(values) == {"n": 100, "p50_ms": 50.0, "p95_ms": 95.0,
                                        "p99_ms": 99.0, "max_ms": 100.0}
    assert load.percentiles([])["p99_ms"] is None
