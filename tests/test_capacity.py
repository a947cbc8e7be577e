"""bench/capacity.py: the capacity model's arithmetic on a tiny input, and docs/capacity.md's
tables as the script prints them (the docs and the arithmetic cannot drift apart)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import capacity

TINY = {
    **capacity.INPUTS,
    "screens": 1000,
    "idle_core_share": 0.2, "idle_screens": 1000,  # 200 µs/s a screen
    "plays_cpu_ms": 6.0, "plays_s": 60,  # 100 µs/s a screen
    "cpu_target": 0.6,
    "connect_cpu_s": 10.0, "connect_screens": 1000, "connect_s": 20.0,
    "bare_connect_cpu_s": 1.0, "bare_screens": 1000, "bare_idle_core_share": 0.1,
    "refusals_per_screen": 1,
    "ram_mib_per_core": 1100, "rss_base_mib": 100, "memory_kib": 512,
    "worker_connections": 20000,
    "heartbeat_s": 30, "reconcile_s": 180, "sync_selects": 2, "flush_s": 2.0,
    "flush_statements": 3, "plays_fixed_statements": 4, "plays_stat_rows": 2,
    "pool_per_process": 30, "pg_max_connections": 100,
}


def test_arithmetic_on_a_tiny_input() -> None:
    d = capacity.derive(TINY)
    assert d["idle_us"] == pytest.approx(200)
    assert d["plays_us"] == pytest.approx(100)
    assert d["steady_us"] == pytest.approx(300)
    assert d["cpu_screens"] == pytest.approx(2000)  # 0.6 core / 300 µs/s
    assert d["mem_screens"] == pytest.approx(2000)  # 1,000 MiB / 0.5 MiB
    assert d["per_process"] == 2000
    assert d["processes"] == 1
    assert d["connect_ms"] == pytest.approx(10)
    assert d["connect_net_ms"] == pytest.approx(10 - 200 * 20 / 2 / 1000)  # 8 ms
    assert d["admit_ms"] == pytest.approx(9)  # 8 + one refusal of 1 ms
    assert d["load"] == pytest.approx(0.6)
    assert d["rate_first"] == pytest.approx(1000 / 9)
    assert d["rate_last"] == pytest.approx(1000 * 0.4 / 9)
    # dS/dt = (1 - 300e-6 S) / 9e-3 from 0 to 2,000 screens
    assert d["storm_s"] == pytest.approx(9e-3 / 300e-6 * math.log(1 / 0.4))
    assert d["hb_rows"] == pytest.approx(2 * 1000 / 30)
    assert d["hb_statements"] == pytest.approx(1.5)
    assert d["sync_selects_s"] == pytest.approx(1000 / 180 * 2)
    assert d["plays_statements"] == pytest.approx(1000 / 60 * 6)
    assert d["pg_over"] == pytest.approx(0.3)


def test_the_tightest_bound_wins_and_machines_round_up() -> None:
    d = capacity.derive({**TINY, "screens": 100_000, "worker_connections": 1500})
    assert d["per_process"] == 1500
    assert d["processes"] == 67  # 66.7
    assert (d["machines_2"], d["machines_8"]) == (34, 9)


def test_the_floor_uses_the_bare_stack_and_no_reads() -> None:
    low = capacity.derive(capacity.floor_inputs(TINY))
    assert low["idle_us"] == pytest.approx(100)
    assert low["connect_ms"] == pytest.approx(1)
    assert low["sync_selects_s"] == 0 and low["storm_selects"] == 0


def test_worked_arithmetic_names_the_values() -> None:
    d = capacity.derive(TINY)
    assert capacity.worked("idle_us + plays_us", TINY, d) == "200 + 100"
    assert capacity.worked("cpu_target * 1e6 / steady_us", TINY, d) == "0.6 * 1e6 / 300"


def test_inputs_from_a_results_file(tmp_path: Path) -> None:
    path = tmp_path / "load-x-n500.json"
    path.write_text(json.dumps({"screens": 500, "results": {"app": {
        "connect": {"server_cpu_s": 5.0, "screens": 500, "seconds": 9.0},
        "memory": {"per_connection_kib": 70.0, "idle_cpu_share": 0.05},
    }}}))
    inputs, sources = dict(capacity.INPUTS), dict(capacity.SOURCES)
    capacity.load_results(path, inputs, sources)
    assert (inputs["connect_cpu_s"], inputs["memory_kib"], inputs["idle_screens"]) == (5.0, 70.0,
                                                                                       500)
    assert sources["idle_core_share"] == "load-x-n500.json results.app.memory.idle_cpu_share"
    assert inputs["publish_cpu_s"] == capacity.INPUTS["publish_cpu_s"]  # not in the file: kept


def test_docs_tables_are_the_scripts() -> None:
    text = capacity.DOC.read_text()
    assert capacity.update_docs(text, capacity.INPUTS, capacity.SOURCES) == text, (
        "docs/capacity.md differs from bench/capacity.py: run it with --update-docs")
