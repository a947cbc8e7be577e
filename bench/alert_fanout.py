"""Alert fan-out: one real `cunping serve` process, N simulated screens (bench/swarm.py), one
alert issued through the API. Times until every screen has received it, until the server has
recorded every acknowledgement, and until every screen has received the cancellation.

    .venv/bin/python bench/alert_fanout.py [N]          # default 1000

Figures go to docs/performance.md.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.test_screen_e2e import Api
from tests.live import LiveServer, wait_until

SETUP = """
from server.models import Role
from server.services import regions, screens, users
county = regions.create(None, "B0", "压测县")
towns = [regions.create(None, f"B{{t}}", f"压测{{t}}镇", county) for t in range(1, 11)]
alerter = users.create(None, "bench_alert", "bench-password", grants=[(Role.ALERT, county)])
_, token = users.create_token(alerter, "bench")
tokens = []
for i in range({n}):
    _screen, screen_token = screens.provision(None, towns[i % 10], f"屏{{i}}")
    tokens.append(screen_token)
import json
print(json.dumps({{"alert": token, "screens": tokens}}))
"""


def events(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def main(n: int = 1000) -> None:
    folder = Path(tempfile.mkdtemp(prefix="cunping-fanout-"))
    server = LiveServer.create(folder / "server", demo=False)
    print(f"provisioning {n} screens…", file=sys.stderr)
    secrets = json.loads(server.run_python(SETUP.format(n=n), timeout=600).splitlines()[-1])
    (folder / "tokens.txt").write_text("\n".join(secrets["screens"]))
    server.start()
    api = Api(server.url, secrets["alert"])
    out = folder / "swarm.jsonl"
    swarm = subprocess.Popen([sys.executable, str(Path(__file__).with_name("swarm.py")),
                              "--server", server.url, "--tokens", str(folder / "tokens.txt"),
                              "--out", str(out)])
    try:
        started = time.monotonic()
        wait_until(lambda: len({e["screen"] for e in events(out) if e["event"] == "connect"})
                   >= n, 600, interval=0.5, what=f"{n} screens connected")
        print(f"{n} screens connected in {time.monotonic() - started:.1f} s", file=sys.stderr)
        time.sleep(2)
        t0 = time.time()
        alert = api.call("POST", "/alerts", {
            "level": "I", "event": "地震", "title": "压测县地震预警", "text": "压测。",
            "targets": ["B0"]})
        key = f"{alert['code']}:{alert['version']}"
        print(f"API call returned after {(time.time() - t0) * 1000:.0f} ms", file=sys.stderr)

        def received() -> list[float] | None:
            times: dict[int, float] = {}
            for e in events(out):
                if e["event"] == "alerts" and key in e["keys"]:
                    times.setdefault(e["screen"], e["t"] - t0)
            return sorted(times.values()) if len(times) >= n else None

        got = wait_until(received, 120, interval=0.2, what="every screen received the alert")
        acked = wait_until(
            lambda: api.call("GET", f"/alerts/{alert['code']}")["delivery"]["acknowledged"] >= n,
            120, interval=0.2, what="every acknowledgement recorded")
        acked_at = time.time() - t0
        assert acked
        t1 = time.time()
        api.call("POST", f"/alerts/{alert['code']}/cancel", {"reason": "压测结束"})

        def cleared() -> list[float] | None:
            times: dict[int, float] = {}
            for e in events(out):
                if e["event"] == "alerts" and not e["keys"] and e["t"] >= t1:
                    times.setdefault(e["screen"], e["t"] - t1)
            return sorted(times.values()) if len(times) >= n else None

        gone = wait_until(cleared, 120, interval=0.2, what="every screen got the cancel")
    finally:
        swarm.terminate()
        swarm.wait(timeout=30)
        server.stop()
        print("\n".join(line for line in server.log_tail(400).splitlines()
                        if "alerts sent" in line), file=sys.stderr)

    def pct(xs: list[float], p: float) -> float:
        return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000

    for name, xs in (("issue -> received", got), ("cancel -> received", gone)):
        print(f"{name}: first {xs[0] * 1000:.0f} ms, median {statistics.median(xs) * 1000:.0f} ms, "
              f"p95 {pct(xs, 0.95):.0f} ms, max {max(xs) * 1000:.0f} ms over {len(xs)} screens")
    print(f"issue -> all {n} acknowledgements recorded: {acked_at * 1000:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
