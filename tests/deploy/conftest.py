"""Deployment tests print the processes' (or the containers') and the players' logs when they
fail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed:
        return
    if "stack" in request.fixturenames:  # test_compose.py: the containers' logs
        stack = request.getfixturevalue("stack")
        print(f"\n--- compose logs ({stack.project}) ---\n{stack.logs()}")
        logs: list[Path] = []
    elif "deployment" in request.fixturenames:
        logs = request.getfixturevalue("deployment").cluster.logs()
    else:
        return
    for log in [*logs, *sorted(tmp_path.glob("*/player.log"))]:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-120:])
        print(f"\n--- {log} ---\n{tail}")
