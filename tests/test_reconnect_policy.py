"""``wskit.Reconnect``: the backoff arithmetic, what a server's wish reads as,
and the waits between attempts measured on ``trio.testing.MockClock``.

The waits are checked in virtual time: a client dials a loopback port where
nothing listens (refused at once, no real wait), and the clock jumps over
every backoff delay, so the exact times of the attempts can be asserted.
"""

from __future__ import annotations

import email.utils
import random
import socket
import time
from typing import Any

import pytest
import trio
import trio.testing

import wskit
from wskit._core.http import Response
from wskit._io.reconnect import close_wish, policy_from, retry_after


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/"


# ----------------------------------------------------------------------
# The policy object


@pytest.mark.parametrize("kwargs", [
    {"initial_delay": -1}, {"initial_delay": 0}, {"max_delay": 0},
    {"max_delay": float("inf")}, {"server_delay": -0.5}, {"server_delay": "2"},
    {"max_server_delay": True}, {"factor": 0.5}, {"factor": float("nan")},
    {"jitter": "equal"}, {"max_attempts": 0}, {"max_attempts": 1.5},
    {"max_attempts": True}, {"stop_codes": 1008}, {"stop_codes": ["1008"]},
    {"stop_statuses": "404"},
])
def test_bad_policy_values_are_usage_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(wskit.Error) as caught:
        wskit.Reconnect(**kwargs)
    assert caught.value.kind is wskit.ErrorKind.USAGE
    assert f"Reconnect.{next(iter(kwargs))}" in str(caught.value)


def test_policy_is_frozen_keyword_only_with_documented_defaults() -> None:
    policy = wskit.Reconnect()
    assert (policy.initial_delay, policy.factor, policy.max_delay, policy.jitter,
            policy.max_attempts) == (1.0, 2.0, 60.0, "full", None)
    assert policy.stop_codes == {1008}
    assert {401, 403, 404} <= set(policy.stop_statuses)
    assert 503 not in policy.stop_statuses and 429 not in policy.stop_statuses
    with pytest.raises(AttributeError):
        policy.factor = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        wskit.Reconnect(1.0)  # type: ignore[misc]
    custom = wskit.Reconnect(stop_codes=[1008, 4001])
    assert custom.stop_codes == frozenset({1008, 4001})  # any collection, kept frozen


def test_reconnect_argument_values() -> None:
    assert policy_from(None) is None and policy_from(False) is None
    assert policy_from(True) == wskit.Reconnect()
    policy = wskit.Reconnect(initial_delay=0.5)
    assert policy_from(policy) is policy
    with pytest.raises(wskit.Error) as caught:
        policy_from(5)  # type: ignore[arg-type]
    assert caught.value.kind is wskit.ErrorKind.USAGE


def test_exponential_bound_without_jitter() -> None:
    policy = wskit.Reconnect(initial_delay=0.5, factor=3, max_delay=10, jitter=None)
    rng = random.Random(1)
    assert [policy.delay(n, None, rng) for n in range(1, 7)] == [0.5, 1.5, 4.5, 10, 10, 10]
    # Years of failures do not overflow.
    assert policy.delay(10**9, None, rng) == 10


def test_full_jitter_stays_under_the_bound_and_spreads() -> None:
    policy = wskit.Reconnect(initial_delay=1, factor=2, max_delay=30)
    rng = random.Random(12)
    for attempt in range(1, 10):
        bound = min(30, 2 ** (attempt - 1))
        delays = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        # Spread over the window, not bunched at one end (200 draws).
        assert min(delays) < bound * 0.1 and max(delays) > bound * 0.9
        assert len(set(delays)) == 200


def test_a_server_wish_is_never_shortened_and_is_capped() -> None:
    policy = wskit.Reconnect(max_server_delay=100)
    rng = random.Random(3)
    delays = [policy.delay(1, 8.0, rng) for _ in range(200)]
    assert all(8.0 <= d <= 12.0 for d in delays)
    assert max(delays) - min(delays) > 2  # spread upwards, not lockstep
    assert 100 <= policy.delay(1, 10**6, rng) <= 150
    exact = wskit.Reconnect(jitter=None)
    assert exact.delay(5, 8.0, rng) == 8.0
    assert exact.delay(5, -3, rng) == 0.0


def test_close_wishes() -> None:
    policy = wskit.Reconnect(server_delay=2.5)
    assert close_wish(1013, "overloaded; retry-after=7", policy) == 7.0
    assert close_wish(1013, "Retry-After: 0.25", policy) == 0.25
    assert close_wish(1000, "maintenance, retry after 30", policy) == 30.0  # any code
    assert close_wish(1012, "", policy) == 2.5
    assert close_wish(1013, "busy", policy) == 2.5
    assert close_wish(1001, "server shutting down", policy) == 2.5
    assert close_wish(1006, "", policy) is None
    assert close_wish(1011, "handler error", policy) is None


def _rejected(headers: list[tuple[str, str]]) -> wskit.Error:
    return wskit.Error("rejected", wskit.ErrorKind.HTTP, status=503,
                       response=Response(503, b"", headers))


def test_retry_after_header() -> None:
    assert retry_after(_rejected([("Retry-After", "120")])) == 120.0
    assert retry_after(_rejected([])) is None
    assert retry_after(_rejected([("Retry-After", "soon")])) is None
    assert retry_after(_rejected([("Retry-After", "\u00b2")])) is None  # a digit, not ASCII
    assert retry_after(wskit.Error("refused", wskit.ErrorKind.IO)) is None
    when = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= (retry_after(_rejected([("Retry-After", when)])) or 0) <= 61
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert retry_after(_rejected([("Retry-After", past)])) == 0.0
    assert retry_after(_rejected([("Retry-After", "Sun, 06 Nov 1994 08:49:37")])) is None


# ----------------------------------------------------------------------
# The waits, in virtual time


class Counting(wskit.Handler):
    def __init__(self, out: wskit.Sender, seen: list[tuple[int, float, float, Any]]) -> None:
        super().__init__(out)
        self.seen = seen

    def on_reconnecting(self, attempt: int, delay: float, error: wskit.Error) -> None:
        self.seen.append((attempt, delay, trio.current_time(), error))


async def test_backoff_waits_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[tuple[int, float, float, Any]] = []
    dials: list[float] = []

    class Client(Counting):
        def build_request(self, url: str) -> wskit.Request:
            dials.append(trio.current_time())
            return wskit.Request.for_url(url)

    policy = wskit.Reconnect(initial_delay=1, factor=2, max_delay=10, jitter=None,
                             max_attempts=6)
    settings = wskit.Settings(shutdown_on_interrupt=False)
    async with wskit.WebSocket(lambda out: Client(out, seen), settings) as ws:
        with pytest.raises(wskit.Error) as caught:
            await ws.connect(refused_url(), reconnect=policy)
    assert caught.value.kind is wskit.ErrorKind.IO  # the last attempt's error
    assert [(a, d) for a, d, _, _ in seen] == [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10),
                                                (6, 10)]
    assert all(e.kind is wskit.ErrorKind.IO for _, _, _, e in seen)
    # build_request ran for the first try and each of the 6 attempts, each
    # one exactly its delay after the failure before it.
    assert len(dials) == 7
    for (_, delay, failed_at, _), dialled_at in zip(seen, dials[1:], strict=True):
        assert dialled_at - failed_at == pytest.approx(delay)


async def test_many_clients_spread_their_attempts(
    autojump_clock: trio.testing.MockClock
) -> None:
    # 100 clients lose the server at the same instant; with full jitter their
    # attempts spread over each window instead of coming back together.
    seen: list[tuple[int, float, float, Any]] = []
    policy = wskit.Reconnect(initial_delay=1, factor=2, max_delay=8, max_attempts=3)
    settings = wskit.Settings(shutdown_on_interrupt=False)
    url = refused_url()
    async with wskit.WebSocket(lambda out: Counting(out, seen), settings) as ws:
        for _ in range(100):
            ws.broadcaster().connect(url, reconnect=policy)
    for attempt, window in ((1, 1.0), (2, 2.0), (3, 4.0)):
        delays = sorted(d for a, d, _, _ in seen if a == attempt)
        assert len(delays) == 100
        assert len(set(delays)) == 100  # no two clients wait the same
        assert all(0 <= d <= window for d in delays)
        # Spread over most of the window: with 100 uniform draws, the range
        # is below half the window with probability ~1e-28.
        assert delays[-1] - delays[0] > window / 2
        # No crowd: at most a quarter of the clients in any tenth of it
        # (expected 10; a quarter is ~6 standard deviations away).
        for start in range(10):
            low, high = start * window / 10, (start + 1) * window / 10
            assert sum(low <= d < high for d in delays) <= 25
