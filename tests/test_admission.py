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
    t = gate._stamp + 10  # running for a while
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
