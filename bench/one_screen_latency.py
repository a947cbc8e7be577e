"""Publish → on screen, one real server and one real headless player on this machine.

Publishes and withdraws N notices through the API and times each until the player's headless
display has drawn the change (frames.jsonl). Run from the repository root:

    .venv/bin/python bench/one_screen_latency.py [N]

The load harness for thousands of screens comes with the scale-out work (docs/performance.md).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.test_screen_e2e import SETUP, County
from tests.live import LivePlayer, LiveServer, wait_until


def main(rounds: int = 8) -> None:
    folder = Path(tempfile.mkdtemp(prefix="cunping-bench-"))
    server = LiveServer.create(folder / "server", demo=False)
    secrets = json.loads(server.run_python(SETUP).strip().splitlines()[-1])
    server.start()
    county = County(server, secrets)
    player = LivePlayer.create(folder / "player", server.url, county.screen_token)
    player.start()
    try:
        wait_until(lambda: any(f.get("showing") == "standby" for f in player.frames_log()), 30,
                   what="the player on standby")
        published: list[float] = []
        withdrawn: list[float] = []
        for i in range(rounds):
            draft = county.draft(f"测量公告{i}")
            county.approve(draft["id"])
            seq = player.frames_log()[-1]["seq"]
            start = time.monotonic()
            code = county.editor.call("POST", f"/notices/{draft['id']}/publish", {})["code"]
            wait_until(lambda: any(f["seq"] > seq and f.get("showing") == code  # noqa: B023
                                   for f in player.frames_log()), 5, interval=0.005)
            published.append(time.monotonic() - start)
            seq = player.frames_log()[-1]["seq"]
            start = time.monotonic()
            county.withdraw(draft["id"])
            wait_until(lambda: any(f["seq"] > seq and f.get("showing") != code  # noqa: B023
                                   for f in player.frames_log()), 5, interval=0.005)
            withdrawn.append(time.monotonic() - start)
    finally:
        player.stop()
        server.stop()
    for name, xs in (("publish -> on screen", published), ("withdraw -> off screen", withdrawn)):
        print(f"{name}: median {statistics.median(xs) * 1000:.0f} ms, "
              f"max {max(xs) * 1000:.0f} ms over {len(xs)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
