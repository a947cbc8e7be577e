"""The capacity model of docs/capacity.md: its inputs and the arithmetic, in one place.

    .venv/bin/python bench/capacity.py                          # the inputs below
    .venv/bin/python bench/capacity.py bench/results/load-….json  # measured fields from a run
    .venv/bin/python bench/capacity.py --set plays_cpu_ms=2.0     # one input changed
    .venv/bin/python bench/capacity.py --update-docs            # rewrite docs/capacity.md's tables

INPUTS holds every number the model uses, SOURCES where each comes from. A load-*.json of
bench/load.py replaces the measured ones (results.app.*, results.bare.*; later files win).
DERIVED is the arithmetic: each row's formula is evaluated as written, over the inputs and the
rows above it, so the formula printed is the formula computed. Two columns: "now" (the inputs
as they are) and "floor" (FLOOR applied: heartbeat, sync and connect at the bare stack's
measured cost, no database reads on connect and sync — what the realtime rework aims at).
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "capacity.md"
N10K = "load-20261205-011957-n10000.json"  # newest run with every app figure (issue 9)
BARE = "load-20261205-011957-n10000.json"  # the bare stack, in the same run

# name: (value, source)
_TABLE: dict[str, tuple[float, str]] = {
    # measured: files in bench/results/ (the newest runs; docs/capacity.md gives the spread)
    "connect_cpu_s": (15.01, f"{N10K} results.app.connect.server_cpu_s"),
    "connect_screens": (10000, f"{N10K} results.app.connect.screens"),
    "connect_s": (16.78, f"{N10K} results.app.connect.seconds"),
    "idle_core_share": (0.13, f"{N10K} results.app.memory.idle_cpu_share"),
    "idle_screens": (10000, f"{N10K} screens"),
    "memory_kib": (65.6, f"{N10K} results.app.memory.per_connection_kib"),
    "rss_base_mib": (149.0, f"{N10K} results.app.memory.rss_before_mib"),
    "publish_cpu_s": (0.37, f"{N10K} results.app.publish.server_cpu_s"),
    "publish_p99_ms": (385.5, f"{N10K} results.app.publish.p99_ms"),
    "publish_screens": (10000, f"{N10K} results.app.publish.n"),
    "event_bytes": (1955, f"{N10K} results.app.publish.event_bytes"),
    "alert_p99_ms": (1045.2, f"{N10K} results.app.alert.p99_ms (received)"),
    "alert_screens": (10000, f"{N10K} results.app.alert.n"),
    "bare_connect_cpu_s": (8.71, f"{BARE} results.bare.connect.server_cpu_s"),
    "bare_connect_s": (8.94, f"{BARE} results.bare.connect.seconds"),
    "bare_screens": (10000, f"{BARE} results.bare.connect.screens (idle: the same N)"),
    "bare_idle_core_share": (0.105, f"{BARE} results.bare.memory.idle_cpu_share"),
    # the protocol and the code
    "heartbeat_s": (30, "player/protocol.py HEARTBEAT_SECONDS"),
    "reconcile_s": (180, "player/protocol.py RECONCILE_SECONDS"),
    "plays_s": (60, "player/protocol.py PLAYS_SECONDS"),
    "ping_s": (25, "server/realtime/__init__.py ping_interval"),
    "flush_s": (2.0, "server/services/heartbeats.py FLUSH_SECONDS"),
    "flush_statements": (3, "heartbeats._write: UPDATE screens … FROM unnest, INSERT … ON "
                            "CONFLICT screen_days (unnest), COMMIT"),
    "hb_rows_per_heartbeat": (2, "heartbeats._write: the screens row, the screen_days row"),
    "connect_rows": (2, "heartbeats._write: the screens row, the screen_days row (and one "
                        "pairing UPDATE per pass)"),
    "connect_selects": (0, "server/realtime/directory.py: a known token, its chain and the "
                           "revisions from memory; a snapshot cached per (region, revision)"),
    "sync_selects": (0, "PlayerNamespace.on_sync: answered from memory (the directory)"),
    "plays_fixed_statements": (4, "PlayerNamespace.on_plays + plays.record: the screen, the "
                                  "notices, INSERT play_batches, COMMIT"),
    "publish_messages": (1, "push._emit: one queue message per notice change (2 with a "
                            "removal), whatever the rooms"),
    "presence_messages": (1, "heartbeats._announce → dashboard presence: one per connect"),
    "pool_per_process": (30, "server/config.py pool 20 + overflow 10"),
    "dispatcher_polls_s": (2.0, "alert_dispatch.POLL_SECONDS (the alerts counter) and "
                                "state.DIRECTORY_SECONDS (the revision counter), per process"),
    "worker_connections": (20000, "deploy/gunicorn.conf.py CUNPING_WORKER_CONNECTIONS"),
    "batch_keep_days": (7, "server/services/plays.py BATCH_KEEP_DAYS"),
    # estimates: not measured (docs/capacity.md says how to measure each)
    "plays_cpu_ms": (3.0, "estimate: one PLAYS event (5 statements, a commit, Flask context); "
                          "bench/lightclient.py sends none"),
    "plays_stat_rows": (2, "estimate: play_stats upserts per batch (notices shown in 60 s)"),
    "redis_decode_us": (50, "estimate: one queue message read and dispatched by a process"),
    "refusals_per_screen": (1, "assumption: with Retry-After, one refusal per screen"),
    # the deployment (choices)
    "screens": (100000, "a province"),
    "cpu_target": (0.5, "choice: steady load ≤ half a core; the rest for storms, publishes"),
    "ram_mib_per_core": (2048, "choice: 2 GiB per core (per process)"),
    "pg_max_connections": (100, "PostgreSQL's default max_connections"),
}
INPUTS: dict[str, float] = {k: v for k, (v, _s) in _TABLE.items()}
SOURCES: dict[str, str] = {k: s for k, (_v, s) in _TABLE.items()}

# The realtime rework's floor: the bare stack's measured costs for the steady events and the
# connect, and no database reads on connect or sync. Plays and writes stay as they are.
FLOOR: dict[str, str] = {
    "idle_core_share": "bare_idle_core_share",
    "connect_cpu_s": "bare_connect_cpu_s",
    "connect_s": "bare_connect_s",
    "connect_screens": "bare_screens",
    "idle_screens": "bare_screens",
}
FLOOR_ZERO = ("connect_selects", "sync_selects")

# (id, quantity, unit, formula). Ids are names the later formulas use.
DERIVED: list[tuple[str, str, str, str]] = [
    # per screen
    ("idle_us", "steady CPU per screen: pings, heartbeats, syncs", "µs/s",
     "idle_core_share / idle_screens * 1e6"),
    ("plays_us", "steady CPU per screen: plays", "µs/s", "plays_cpu_ms * 1000 / plays_s"),
    ("steady_us", "steady CPU per screen", "µs/s", "idle_us + plays_us"),
    ("events", "steady events, province: heartbeats, syncs, plays, pings", "/s",
     "screens * (1 / heartbeat_s + 1 / reconcile_s + 1 / plays_s + 1 / ping_s)"),
    ("connect_ms", "connect CPU per screen, as measured", "ms",
     "connect_cpu_s / connect_screens * 1000"),
    ("connect_net_ms", "connect CPU per screen, less the steady traffic during the ramp", "ms",
     "connect_ms - idle_us * connect_s / 2 / 1000"),
    ("refuse_ms", "a refused handshake (the bare stack's connect)", "ms",
     "bare_connect_cpu_s / bare_screens * 1000"),
    # per process
    ("cpu_screens_measured", "screens per process, CPU-bound, measured traffic only (no plays)",
     "screens", "cpu_target * 1e6 / idle_us"),
    ("cpu_screens", "screens per process, CPU-bound", "screens", "cpu_target * 1e6 / steady_us"),
    ("mem_screens", "screens per process, memory-bound", "screens",
     "(ram_mib_per_core - rss_base_mib) * 1024 / memory_kib"),
    ("per_process", "screens per process", "screens",
     "floor(min(cpu_screens, mem_screens, worker_connections))"),
    ("processes", "processes", "", "ceil(screens / per_process)"),
    ("machines_2", "2-core machines (one process a core)", "", "ceil(processes / 2)"),
    ("machines_8", "8-core machines", "", "ceil(processes / 8)"),
    ("rss_mib", "memory of a full process", "MiB",
     "rss_base_mib + per_process * memory_kib / 1024"),
    ("load", "steady load of a full process", "core", "per_process * steady_us / 1e6"),
    # restart storm (every process restarts at once; each admits its own screens)
    ("admit_ms", "CPU per admitted screen in a storm", "ms",
     "connect_net_ms + refusals_per_screen * refuse_ms"),
    ("rate_first", "admitted per second per process, first screen", "/s", "1000 / admit_ms"),
    ("rate_last", "admitted per second per process, last screen", "/s",
     "1000 * (1 - load) / admit_ms"),
    ("storm_s", "storm: every screen back", "s",
     "admit_ms / 1000 / (steady_us / 1e6) * ln(1 / (1 - load))"),
    ("storm_rate", "storm: connects per second, province", "/s", "screens / storm_s"),
    # publish and alert fan-out (processes in parallel)
    ("publish_cpu_ms", "province-wide notice: CPU per process", "ms",
     "publish_cpu_s / publish_screens * per_process * 1000"),
    ("publish_p99", "province-wide notice: p99, scaled from the run", "ms",
     "publish_p99_ms * per_process / publish_screens"),
    ("alert_p99", "province-wide alert: last screen received, scaled", "s",
     "alert_p99_ms * per_process / alert_screens / 1000"),
    # PostgreSQL, steady
    ("hb_rows", "heartbeat rows written (screens + screen_days)", "rows/s",
     "hb_rows_per_heartbeat * screens / heartbeat_s"),
    ("hb_flush_rows", "heartbeats per flush per process", "rows",
     "per_process * flush_s / heartbeat_s"),
    ("hb_statements", "heartbeat flush statements (commits: a third)", "/s",
     "processes * flush_statements / flush_s"),
    ("sync_selects_s", "sync reads", "SELECT/s", "screens / reconcile_s * sync_selects"),
    ("plays_tx", "plays transactions (commits)", "/s", "screens / plays_s"),
    ("plays_statements", "plays statements", "/s",
     "plays_tx * (plays_fixed_statements + plays_stat_rows)"),
    ("plays_batch_rows", "play_batches rows kept", "rows",
     "screens * 86400 / plays_s * batch_keep_days"),
    ("dispatcher_selects", "alert dispatcher polls", "SELECT/s", "processes / dispatcher_polls_s"),
    ("storm_selects", "storm: connect reads", "SELECT/s", "storm_rate * connect_selects"),
    ("storm_rows", "storm: connect rows written (screens + screen_days)", "rows/s",
     "connect_rows * storm_rate"),
    ("alert_rows", "a province-wide alert: delivery rows inserted + acknowledged", "rows",
     "2 * screens"),
    ("pg_connections", "database connections the pools may open", "",
     "processes * pool_per_process"),
    ("pg_over", "… against PostgreSQL's max_connections", "×",
     "pg_connections / pg_max_connections"),
    # Redis and the processes reading it
    ("publish_deliveries", "a notice: messages delivered by Redis", "",
     "publish_messages * processes"),
    ("publish_bytes", "a notice: bytes out of Redis", "bytes", "publish_deliveries * event_bytes"),
    ("storm_presence_cpu", "storm: reading every process's presence messages, per process",
     "core", "storm_rate * presence_messages * redis_decode_us / 1e6"),
    ("storm_presence_deliveries", "storm: presence messages delivered by Redis", "/s",
     "storm_rate * presence_messages * processes"),
    # nginx
    ("nginx_conns", "nginx: connections (client + upstream)", "", "2 * screens"),
]

_NAMES = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_FUNCS: dict[str, Any] = {"ceil": math.ceil, "floor": math.floor, "min": min, "ln": math.log}


def fmt(value: float) -> str:
    """A number as the tables print it: thousands separated, 3 significant figures below 100."""
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def exact(value: float) -> str:
    """An input as given (thousands separated)."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"


def floor_inputs(inputs: dict[str, float]) -> dict[str, float]:
    out = {**inputs, **{k: inputs[v] for k, v in FLOOR.items()}}
    out.update({k: 0 for k in FLOOR_ZERO})
    return out


def derive(inputs: dict[str, float]) -> dict[str, float]:
    """Every DERIVED row's value, in order (a row may use the inputs and the rows above)."""
    scope: dict[str, Any] = dict(inputs)
    out: dict[str, float] = {}
    for key, _label, _unit, formula in DERIVED:
        try:
            value = eval(formula, {"__builtins__": {}, **_FUNCS}, scope)  # our own formulas
        except (ZeroDivisionError, ValueError):  # a load of a core or more: no bound
            value = math.inf
        scope[key] = out[key] = value
    return out


def worked(formula: str, inputs: dict[str, float], derived: dict[str, float]) -> str:
    """The formula with each name replaced by its value: the arithmetic shown (inputs as
    given, derived values rounded as the table prints them)."""

    def value(match: re.Match[str]) -> str:
        name = match.group()
        if name in derived:
            return fmt(derived[name])
        return exact(inputs[name]) if name in inputs else name

    return _NAMES.sub(value, formula)


def inputs_table(inputs: dict[str, float], sources: dict[str, str]) -> str:
    rows = ["| input | value | source |", "| --- | ---: | --- |"]
    rows += [f"| `{k}` | {exact(v)} | {sources.get(k, '')} |" for k, v in inputs.items()]
    return "\n".join(rows)


def derived_table(inputs: dict[str, float]) -> str:
    now, low = derive(inputs), derive(floor_inputs(inputs))
    rows = ["| id | quantity | unit | formula, with the inputs (now) | now | floor |",
            "| --- | --- | --- | --- | ---: | ---: |"]
    for key, label, unit, formula in DERIVED:
        rows.append(f"| `{key}` | {label} | {unit} | `{formula}` = {worked(formula, inputs, now)} "
                    f"| {fmt(now[key])} | {fmt(low[key])} |")
    return "\n".join(rows)


def load_results(path: Path, inputs: dict[str, float], sources: dict[str, str]) -> None:
    """Take the measured inputs from a bench/load.py result file (the fields it has)."""
    data = json.loads(path.read_text())
    results = data.get("results", {})
    name = path.name
    fields = {
        "connect_cpu_s": ("app", "connect", "server_cpu_s"),
        "connect_screens": ("app", "connect", "screens"),
        "connect_s": ("app", "connect", "seconds"),
        "idle_core_share": ("app", "memory", "idle_cpu_share"),
        "memory_kib": ("app", "memory", "per_connection_kib"),
        "rss_base_mib": ("app", "memory", "rss_before_mib"),
        "publish_cpu_s": ("app", "publish", "server_cpu_s"),
        "publish_p99_ms": ("app", "publish", "p99_ms"),
        "publish_screens": ("app", "publish", "n"),
        "event_bytes": ("app", "publish", "event_bytes"),
        "alert_p99_ms": ("app", "alert", "p99_ms"),
        "alert_screens": ("app", "alert", "n"),
        "bare_connect_cpu_s": ("bare", "connect", "server_cpu_s"),
        "bare_connect_s": ("bare", "connect", "seconds"),
        "bare_idle_core_share": ("bare", "memory", "idle_cpu_share"),
        "bare_screens": ("bare", "connect", "screens"),
    }
    for key, where in fields.items():
        value: Any = results
        for part in where:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            inputs[key] = value
            sources[key] = f"{name} results.{'.'.join(where)}"
    if "idle_core_share" in sources and sources["idle_core_share"].startswith(name):
        inputs["idle_screens"] = data.get("screens", inputs["idle_screens"])
        sources["idle_screens"] = f"{name} screens"


def update_docs(text: str, inputs: dict[str, float], sources: dict[str, str]) -> str:
    for marker, table in (("inputs", inputs_table(inputs, sources)),
                          ("derived", derived_table(inputs))):
        begin, end = f"<!-- capacity.py {marker}: begin -->", f"<!-- capacity.py {marker}: end -->"
        head, sep, rest = text.partition(begin)
        _old, sep2, tail = rest.partition(end)
        if not sep or not sep2:
            raise ValueError(f"docs/capacity.md has no {begin} … {end}")
        text = f"{head}{begin}\n{table}\n{end}{tail}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="*", type=Path, help="bench/results/load-*.json")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--update-docs", action="store_true", help="rewrite docs/capacity.md")
    args = parser.parse_args(argv)
    inputs, sources = dict(INPUTS), dict(SOURCES)
    for path in args.results:
        load_results(path, inputs, sources)
    for item in args.set:
        key, _eq, value = item.partition("=")
        if key not in inputs:
            parser.error(f"unknown input {key!r}")
        inputs[key] = float(value)
        sources[key] = "--set"
    if args.update_docs:
        DOC.write_text(update_docs(DOC.read_text(), inputs, sources))
    print(inputs_table(inputs, sources), "", derived_table(inputs), sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
