"""The handshake gate (server/realtime/admission.py) as arithmetic, on a clock of its own."""

from __future__ import annotations

from server.realtime.admission import MAX_RETRY_AFTER, Gate


def test_a_storm_is_told_to_spread_over_its_size_divided_by_the_rate() -> None:
    gate = Gate(rate=100, burst=10)
    answers = [gate.admit(now=gate._stamp) for _ in range(1010)]
    assert answers[:10] == [None] * 10  # the burst
    waits = [w for w in answers[10:] if w is not None]
    assert len(waits) == 1000
    assert waits[0] == 1.0 and waits == sorted(waits)
    assert abs(waits[-1] - 10.0) < 0.05  # 1,000 screens at 100 a second: ten seconds


def test_a_screen_refused_again_at_its_slot_joins_the_queue_as_it_is_now() -> None:
    gate = Gate(rate=100, burst=0)
    for _ in range(1000):
        gate.admit(now=gate._stamp)  # ten seconds of slots
    # Ten seconds later every slot has come due; the process ran late and admitted nobody:
    # a screen refused again is told one slot, not to wait behind the thousand that passed.
    gate.lag = 1.0
    assert gate.admit(now=gate._stamp + 10.0) == 1.0


def test_the_hint_never_exceeds_the_cap_and_a_late_loop_refuses_with_tokens_left() -> None:
    gate = Gate(rate=1, burst=5)
    gate.lag = 1.0
    assert gate.admit(now=gate._stamp) is not None  # late: refused although tokens are left
    gate.lag = 0.0
    assert gate.admit(now=gate._stamp) is None
    gate = Gate(rate=1, burst=0)
    waits = [gate.admit(now=gate._stamp) for _ in range(200)]
    assert max(w for w in waits if w is not None) == MAX_RETRY_AFTER


def test_no_more_handshakes_in_flight_than_allowed_until_their_connects_settle() -> None:
    gate = Gate(rate=1000, burst=1000, in_flight=3)
    t = gate._stamp
    assert [gate.admit(now=t) for _ in range(3)] == [None, None, None]
    assert gate.admit(now=t) is not None  # three handshakes not through their connect yet
    gate.settled()
    assert gate.admit(now=t) is None
    # One that never connects (a client gone) stops counting after IN_FLIGHT_SECONDS.
    assert gate.admit(now=t) is not None
    assert gate.admit(now=t + 11) is None


def test_hints_follow_the_rate_the_process_really_admits() -> None:
    gate = Gate(rate=100, burst=100, in_flight=10)
    t = gate._stamp + 600  # running for a while (the start's assumed best is forgotten)
    for n in range(50):  # over five seconds it could take 10 at a time: 50, not 500
        assert gate.admit(now=t - 5 + n * 0.1) is None
        gate.settled()
    assert gate.pace(t) == 10.0
    for _ in range(10):
        gate.admit(now=t)  # ten in flight, none settled: 60 admitted in five seconds now
    assert gate.pace(t) == 12.0
    assert gate.admit(now=t) == 1.0  # (0 waiting + 1) / 12 a second, at least a second
    waits = [gate.admit(now=t) for _ in range(23)]
    assert waits[-1] == 2.0  # 24 waiting at 12 a second, not 0.24 s at the configured 100


def test_a_screen_back_at_its_slot_with_its_ticket_goes_before_newcomers() -> None:
    gate = Gate(rate=10, burst=0)
    t = gate._stamp
    wait = gate.admit(now=t)
    assert wait == 1.0
    ticket = gate.ticket(t + wait)
    later = t + wait
    gate._tokens = 0.0  # the bucket is empty when the slot comes (newcomers took it)
    assert gate.admit(now=later) is not None  # a newcomer: refused
    assert gate.admit(now=later, ticket=ticket) is None  # the ticket's holder: admitted
    assert gate._tokens < 0  # on credit: the next newcomers wait for it
    assert gate.admit(now=later, ticket=ticket) is not None  # a ticket is good once


def test_a_ticket_is_only_good_from_its_slot_for_a_while_and_cannot_be_forged() -> None:
    gate = Gate(rate=10, burst=0)
    t = gate._stamp
    ticket = gate.ticket(t + 5)
    assert gate.admit(now=t + 1, ticket=ticket) is not None  # early
    assert gate.admit(now=t + 5 + 61, ticket=ticket) is not None  # expired
    stamp, _sep, mac = ticket.partition(".")
    forged = f"{int(stamp, 16) - 4000:x}.{mac}"
    assert gate.admit(now=t + 1, ticket=forged) is not None
    assert gate.admit(now=t + 1, ticket="zz.zz") is not None
    assert gate.admit(now=t + 1, ticket="x" * 500) is not None
    assert Gate(rate=10, burst=0).admit(now=t + 5, ticket=ticket) is not None  # another process


def test_used_tickets_are_remembered_while_good_and_forgotten_after() -> None:
    gate = Gate(rate=1000, burst=0)
    t = gate._stamp
    tickets = [gate.ticket(t + i / 100) for i in range(5000)]
    for i, ticket in enumerate(tickets):
        gate._tokens = 1.0
        assert gate.admit(now=t + i / 100, ticket=ticket) is None
        gate.settled()
    assert len(gate._used) == 5000  # all still good: all remembered (none admitted twice)
    gate._tokens = 1.0
    assert gate.admit(now=t + 50, ticket=tickets[4999]) is not None
    gate.admit(now=t + 50 + 61)
    assert not gate._used and not gate._expiry  # past their time: forgotten


def test_a_late_process_refuses_ticket_holders_too_and_they_queue_like_everyone() -> None:
    gate = Gate(rate=100, burst=0)
    t = gate._stamp
    for _ in range(1000):
        gate.admit(now=t)  # ten seconds of slots handed out
    ticket = gate.ticket(t + 1)
    gate.lag = 1.0
    wait = gate.admit(now=t + 1, ticket=ticket)
    assert wait is not None and wait > 5  # behind the 900 still waiting, not back each second


def test_the_busy_answer_carries_the_ticket_and_a_handshake_brings_it_back() -> None:
    from server.realtime.admission import TICKET_HEADER, Middleware

    gate = Gate(rate=1, burst=0)
    seen: list[dict[str, object]] = []

    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        seen.append(environ)
        return [b"ok"]

    middleware = Middleware(app, gate)
    answers: list[tuple[str, dict[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answers.append((status, dict(headers)))

    environ = {"PATH_INFO": "/socket.io/", "QUERY_STRING": "EIO=4&transport=websocket"}
    body = b"".join(middleware(dict(environ), start_response))
    status, headers = answers[-1]
    assert status.startswith("503")
    import json

    assert json.loads(body)["ticket"] == headers[TICKET_HEADER]
    from server.realtime import admission

    slot = int(headers[TICKET_HEADER].split(".")[0], 16) / 1000
    real = admission.time.monotonic
    try:
        admission.time.monotonic = lambda: slot  # type: ignore[assignment]
        back = dict(environ, QUERY_STRING=f"ticket={headers[TICKET_HEADER]}&EIO=4"
                    "&transport=websocket")
        assert b"".join(middleware(back, start_response)) == b"ok"
    finally:
        admission.time.monotonic = real  # type: ignore[assignment]
    assert len(seen) == 1


def test_a_moment_of_refusing_everyone_does_not_stretch_the_hints() -> None:
    gate = Gate(rate=100, burst=100, in_flight=1000)
    # Just started: the process is taken to manage its rate, though it admitted nobody yet
    # (a restart's first herd is refused while the loop is late).
    assert gate.pace(gate._stamp + 5) == 100 * 0.5 ** (5 / 30)
    t = gate._stamp + 600
    for n in range(400):  # 80 a second for five seconds
        assert gate.admit(now=t - 5 + n / 80) is None
    assert gate.pace(t) == 80.0
    # Then the loop runs late for five seconds: nobody admitted, the last window is empty …
    gate.lag = 1.0
    later = t + 5.5
    for _ in range(80):
        gate.admit(now=later)
    # … but hints follow what the process could take, halving every 30 s.
    pace = 80 * 0.5 ** (5.5 / 30)
    assert gate.pace(later) == pace
    assert gate.admit(now=later) == 81 / pace
    assert gate.pace(later + 300) == 10.0  # never below a tenth of the rate
