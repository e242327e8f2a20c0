"""The Trio driver of one server connection, over an in-memory stream, in virtual time.

Each test serves one end of ``trio.testing.memory_stream_pair()`` with the
public ``WebSocket.serve_stream`` and plays the client by hand on the other
end with wsproto, so every byte the peer sends (or fails to send) is the
test's choice. A memory stream is not a socket, so this is the driver's
generic stream path.

Time is Trio's ``MockClock`` with ``autojump_threshold=0`` (pytest-trio's
``autojump_clock`` fixture): whenever every task is blocked the clock jumps
to the next deadline, so a 10 s timeout takes no real time and its expiry
can be asserted to the exact virtual second. Every wait is still bounded by
``trio.fail_after`` (in virtual seconds), so a missing event fails the test
instead of hanging it.

(No ``__init__.py`` here: as a package, ``tests/io`` would be imported as
``io`` and clash with the standard library.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    Request,
    TextMessage,
)

import wskit

#: Bound on every wait, in virtual seconds (far beyond any setting used here).
BOUND = 1000.0


class Peer:
    """The client end of the stream, played by hand with wsproto.

    A reader task (``run``) decodes what the server sends into a channel
    of ``(virtual time, event)``; pings are answered unless
    ``answer_pings=False``. ``eof_at`` is when the server hung up.
    """

    def __init__(self, stream: trio.abc.Stream, *, answer_pings: bool = True) -> None:
        self.stream = stream
        self.answer_pings = answer_pings
        self.proto = WSConnection(ConnectionType.CLIENT)
        self._in, self._out = trio.open_memory_channel[tuple[float, Event]](math.inf)
        self.eof_at: float | None = None
        self.pings: list[float] = []

    async def send(self, event: Event) -> None:
        await self.stream.send_all(self.proto.send(event))

    async def open(self, path: str = "/") -> None:
        await self.send(Request(host="localhost", target=path))
        _, event = await self.next()
        assert isinstance(event, AcceptConnection), event

    async def run(self) -> None:
        async with self._in:
            while True:
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    self.eof_at = trio.current_time()
                    return
                self.proto.receive_data(data)
                for event in self.proto.events():
                    if isinstance(event, Ping):
                        self.pings.append(trio.current_time())
                        if self.answer_pings:
                            await self.send(event.response())
                    self._in.send_nowait((trio.current_time(), event))

    def received_nothing(self) -> bool:
        """Whether nothing (not even a ping) has come from the server yet."""
        return self._out.statistics().current_buffer_used == 0

    async def next(self) -> tuple[float, Event]:
        """The next event from the server (not a ping) and when it came."""
        with trio.fail_after(BOUND):
            while True:
                try:
                    when, event = await self._out.receive()
                except trio.EndOfChannel:
                    raise AssertionError("the server hung up") from None
                if not isinstance(event, Ping):
                    return when, event

    async def wait_eof(self) -> float:
        """Wait until the server hangs up; when it did."""
        with trio.fail_after(BOUND):
            while self.eof_at is None:
                try:
                    await self._out.receive()
                except trio.EndOfChannel:
                    break
        assert self.eof_at is not None
        return self.eof_at


def start_peer(ws: wskit.WebSocket, nursery: trio.Nursery, **kwargs: Any) -> Peer:
    """Serve one end of a memory stream pair on ``ws``; the peer holds the other."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(ws.serve_stream, server_stream)
    peer = Peer(client_stream, **kwargs)
    nursery.start_soon(peer.run)
    return peer


def settings(**kwargs: Any) -> wskit.Settings:
    """Test settings: no keepalive and no compression unless asked for."""
    base: dict[str, Any] = {"ping_interval": None, "compression": None,
                            "shutdown_on_interrupt": False}
    return wskit.Settings(**(base | kwargs))


def stamped(log: Any) -> Callable[..., None]:
    """``log`` with the virtual time appended to each event."""
    return lambda *item: log(*item, trio.current_time())


# ----------------------------------------------------------------------
# handshake_timeout


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n"],
                         ids=["silent", "unfinished-request"])
async def test_handshake_timeout_drops_the_client_after_exactly_the_setting(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any, sent: bytes
) -> None:
    async with wskit.WebSocket(lambda out: Recorder(out, log),
                               settings(handshake_timeout=7)) as ws:
        async with trio.open_nursery() as nursery:
            start = trio.current_time()
            peer = start_peer(ws, nursery)
            if sent:
                await peer.stream.send_all(sent)
            assert await peer.wait_eof() - start == pytest.approx(7)
    # Never opened: no hook ran, not even on_close.
    assert log.names() == []


async def test_handshake_timeout_does_not_touch_an_opened_connection(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    async with wskit.WebSocket(lambda out: Recorder(out, log),
                               settings(handshake_timeout=7)) as ws:
        async with trio.open_nursery() as nursery:
            peer = start_peer(ws, nursery)
            await peer.open()
            await trio.sleep(100)
            assert peer.eof_at is None
            await peer.send(CloseConnection(code=1000))
            await peer.wait_eof()
    assert log.names() == ["open", "close"]


# ----------------------------------------------------------------------
# close_timeout


async def test_close_timeout_gives_up_on_a_peer_that_never_answers(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    class Closer(Recorder):  # type: ignore[misc,valid-type]
        def on_message(self, msg: wskit.Message) -> None:
            self.out.close(4001, "leaving")

        def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
            stamped(self.log)("close", code, reason)

    async with wskit.WebSocket(lambda out: Closer(out, log), settings(close_timeout=9)) as ws:
        async with trio.open_nursery() as nursery:
            peer = start_peer(ws, nursery)
            await peer.open()
            await peer.send(TextMessage(data="close please"))
            sent_at, event = await peer.next()
            assert isinstance(event, CloseConnection) and event.code == 4001
            # We never answer the close.
            assert await peer.wait_eof() - sent_at == pytest.approx(9)
    [(code, reason, at)] = log.of("close")
    assert (code, reason) == (wskit.CloseCode.ABNORMAL, "")
    assert at - sent_at == pytest.approx(9)


async def test_a_peer_that_answers_the_close_in_time_gets_a_clean_close(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    class Closer(Recorder):  # type: ignore[misc,valid-type]
        def on_message(self, msg: wskit.Message) -> None:
            self.out.close(4001, "leaving")

    async with wskit.WebSocket(lambda out: Closer(out, log), settings(close_timeout=9)) as ws:
        async with trio.open_nursery() as nursery:
            peer = start_peer(ws, nursery)
            await peer.open()
            await peer.send(TextMessage(data="close please"))
            _, event = await peer.next()
            assert isinstance(event, CloseConnection)
            await trio.sleep(8)  # slow, but inside close_timeout
            await peer.send(event.response())
            await peer.wait_eof()
    assert log.of("close") == [(4001, "leaving")]


# ----------------------------------------------------------------------
# keepalive


async def test_keepalive_closes_a_peer_that_never_pongs(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    config = settings(ping_interval=20, ping_timeout=5, close_timeout=3)
    async with wskit.WebSocket(lambda out: Recorder(out, log), config) as ws:
        async with trio.open_nursery() as nursery:
            peer = start_peer(ws, nursery, answer_pings=False)
            await peer.open()
            opened = trio.current_time()
            when, event = await peer.next()
            # The ping came after ping_interval; ping_timeout later, the close.
            assert [at - opened for at in peer.pings] == [pytest.approx(20)]
            assert isinstance(event, CloseConnection) and event.code == 1011
            assert when - opened == pytest.approx(25)
            await peer.wait_eof()
    assert log.of("close") == [(wskit.CloseCode.ABNORMAL, "")]
    assert log.of("pong") == []


async def test_keepalive_keeps_a_peer_that_pongs_over_many_intervals(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    config = settings(ping_interval=20, ping_timeout=5)
    async with wskit.WebSocket(lambda out: Recorder(out, log), config) as ws:
        async with trio.open_nursery() as nursery:
            peer = start_peer(ws, nursery)
            await peer.open()
            opened = trio.current_time()
            await trio.sleep(210)
            # One ping per interval, each answered, nothing else.
            assert [round(at - opened) for at in peer.pings] == list(range(20, 201, 20))
            assert len(log.of("pong")) == 10
            assert peer.eof_at is None and log.of("close") == []
            await peer.send(CloseConnection(code=1000))
            _, event = await peer.next()
            assert isinstance(event, CloseConnection) and event.code == 1000
            await peer.wait_eof()
    assert log.of("close") == [(wskit.CloseCode.NORMAL, "")]


# ----------------------------------------------------------------------
# Timers and the order of events


async def test_timers_fire_in_order_and_a_cancelled_one_never_fires(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    class Timed(Recorder):  # type: ignore[misc,valid-type]
        def on_open(self, handshake: wskit.Handshake) -> None:
            self.log("open", trio.current_time())
            self.out.timeout(3, "c")
            self.out.timeout(1, "a")
            self.out.timeout(2, "b")
            self.out.cancel(self.out.timeout(1.5, "cancelled at once"))
            self.later = self.out.timeout(5, "cancelled by a")
            self.out.timeout(0, "zero")

        def on_timeout(self, token: Any) -> None:
            self.log("timeout", token, trio.current_time())
            if token == "a":
                self.later.cancel()

    async with wskit.WebSocket(lambda out: Timed(out, log), settings()) as ws:
        async with trio.open_nursery() as nursery:
            peer = start_peer(ws, nursery)
            await peer.open()
            await trio.sleep(60)
            await peer.send(CloseConnection(code=1000))
            await peer.wait_eof()
    [(opened,)] = log.of("open")
    fired = [(token, at - opened) for token, at in log.of("timeout")]
    assert fired == [("zero", 0), ("a", 1), ("b", 2), ("c", 3)]


async def test_an_async_hook_that_sleeps_is_never_interleaved(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    class Slow(Recorder):  # type: ignore[misc,valid-type]
        def on_open(self, handshake: wskit.Handshake) -> None:
            self.log("open")
            self.out.timeout(1, "tick")  # falls due while the first message sleeps

        async def on_message(self, msg: wskit.Message) -> None:
            self.log("start", str(msg), trio.current_time())
            await trio.sleep(5)
            self.log("end", str(msg), trio.current_time())
            self.out.send(f"done {msg}")

        def on_timeout(self, token: Any) -> None:
            self.log("timeout", token, trio.current_time())

    async with wskit.WebSocket(lambda out: Slow(out, log), settings()) as ws:
        async with trio.open_nursery() as nursery:
            peer = start_peer(ws, nursery)
            await peer.open()
            await peer.send(TextMessage(data="m1"))
            await trio.sleep(2)  # m1 is sleeping in its hook; the timer is due
            await peer.send(TextMessage(data="m2"))
            replies = [await peer.next() for _ in range(2)]
            assert [e.data for _, e in replies if isinstance(e, TextMessage)] == \
                ["done m1", "done m2"]
            await peer.send(CloseConnection(code=1000))
            await peer.wait_eof()
    events = log.snapshot()
    names = [item[0] for item in events]
    # Each message's start is followed by its own end, with nothing between.
    assert names.count("start") == names.count("end") == 2
    for i, name in enumerate(names):
        if name == "start":
            assert events[i + 1][:2] == ("end", events[i][1]), events
    # m1 ends before anything else runs; the timer is not lost, only held.
    assert names[:3] == ["open", "start", "end"] and events[1][1] == "m1"
    [(token, fired_at)] = log.of("timeout")
    assert token == "tick"
    assert fired_at >= log.of("end")[0][1]
    assert names[-1] == "close"


async def test_a_send_before_open_is_delivered_right_after_open(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    class Greeter(Recorder):  # type: ignore[misc,valid-type]
        def on_open(self, handshake: wskit.Handshake) -> None:
            super().on_open(handshake)
            self.out.send("from on_open")

    def factory(out: wskit.Sender) -> Greeter:
        out.send("from the factory")  # before the handshake
        out.send(b"\x01\x02")
        return Greeter(out, log)

    async with wskit.WebSocket(factory, settings()) as ws:
        async with trio.open_nursery() as nursery:
            peer = start_peer(ws, nursery)
            await trio.sleep(3)  # the request comes late: nothing may leave before it
            assert peer.received_nothing() and peer.eof_at is None
            await peer.send(Request(host="localhost", target="/"))
            events = [(await peer.next())[1] for _ in range(4)]
            await peer.send(CloseConnection(code=1000))
            await peer.wait_eof()
    assert isinstance(events[0], AcceptConnection)
    assert [getattr(e, "data", None) for e in events[1:]] == \
        ["from the factory", b"\x01\x02", "from on_open"]
    assert log.names() == ["open", "close"]


async def _peer_closes(peer: Peer) -> None:
    await peer.send(CloseConnection(code=1000, reason="bye"))


async def _server_closes(peer: Peer) -> None:
    await peer.send(TextMessage(data="close"))
    _, event = await peer.next()
    assert isinstance(event, CloseConnection)
    await peer.send(event.response())


async def _both_close_at_once(peer: Peer) -> None:
    # Our close crosses the server's on the wire.
    await peer.send(TextMessage(data="close"))
    await peer.send(CloseConnection(code=1000, reason="crossing"))


async def _peer_drops_the_stream(peer: Peer) -> None:
    await peer.stream.aclose()


async def _peer_ignores_the_close(peer: Peer) -> None:
    await peer.send(TextMessage(data="close twice"))


@pytest.mark.parametrize(("ending", "expected"), [
    (_peer_closes, (1000, "bye")),
    (_server_closes, (4000, "server")),  # the echo of ours
    (_both_close_at_once, (1000, "crossing")),  # the peer's own close frame
    (_peer_drops_the_stream, (1006, "")),
    (_peer_ignores_the_close, (1006, "")),
], ids=["peer-closes", "server-closes", "both-at-once", "peer-drops", "peer-ignores"])
async def test_on_close_runs_exactly_once(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any,
    ending: Callable[[Peer], Any], expected: tuple[int, str]
) -> None:
    class Closer(Recorder):  # type: ignore[misc,valid-type]
        def on_message(self, msg: wskit.Message) -> None:
            self.out.close(4000, "server")
            if msg == "close twice":
                self.out.close(4002, "again")

        def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
            super().on_close(code, reason)
            self.out.close()  # closing from on_close must not start another round

    async with wskit.WebSocket(lambda out: Closer(out, log), settings(close_timeout=4)) as ws:
        async with trio.open_nursery() as nursery:
            peer = start_peer(ws, nursery)
            await peer.open()
            await ending(peer)
            if ending is not _peer_drops_the_stream:
                await peer.wait_eof()
            await trio.sleep(100)  # anything late would have come by now
    assert log.of("close") == [expected], log.snapshot()
    assert log.names()[-1] == "close"


# ----------------------------------------------------------------------
# One read, many events (``inbound.py``: messages inline, the rest awaited)


async def send_at_once(peer: Peer, *events: Event) -> None:
    """Several frames in one write: the server reads them in one read."""
    await peer.stream.send_all(b"".join(peer.proto.send(e) for e in events))


async def test_one_read_of_messages_pings_and_a_raising_hook_in_order(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    class Echo(Recorder):  # type: ignore[misc,valid-type]
        def on_message(self, msg: wskit.Message) -> None:
            super().on_message(msg)
            if msg == "boom":
                raise ValueError("boom")
            self.out.send(f"re {msg}")

        def on_ping(self, data: bytes) -> None:
            self.log("ping", data)

    async with wskit.WebSocket(lambda out: Echo(out, log), settings()) as ws:
        async with trio.open_nursery() as nursery:
            peer = start_peer(ws, nursery)
            await peer.open()
            await send_at_once(peer, TextMessage(data="a"), Ping(payload=b"p"),
                               TextMessage(data="b"), BytesMessage(data=b"c"),
                               TextMessage(data="boom"), TextMessage(data="d"))
            got = [(await peer.next())[1] for _ in range(5)]
            await peer.wait_eof()
    # The replies in order (the pong was queued when the read was decoded,
    # so it may go first), then the close for the hook that raised.
    assert [e.data for e in got if isinstance(e, TextMessage)] == ["re a", "re b", "re b'c'"]
    assert [e.payload for e in got if isinstance(e, Pong)] == [b"p"]
    assert isinstance(got[4], CloseConnection) and got[4].code == 1011
    # Every event in the read's order; after the hook raised, the connection
    # is closing: "d" reaches no hook.
    names = log.names()
    assert names[:6] == ["open", "message", "ping", "message", "message", "message"], names
    assert [m for (m,) in log.of("message")] == ["a", "b", b"c", "boom"]
    assert "error" in names


async def test_one_read_of_messages_for_an_async_hook_in_order(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    class Slow(Recorder):  # type: ignore[misc,valid-type]
        async def on_message(self, msg: wskit.Message) -> None:
            self.log("start", str(msg))
            await trio.sleep(1)
            self.log("end", str(msg))
            self.out.send(f"re {msg}")

        def on_ping(self, data: bytes) -> None:
            self.log("ping", data)

    async with wskit.WebSocket(lambda out: Slow(out, log), settings()) as ws:
        async with trio.open_nursery() as nursery:
            peer = start_peer(ws, nursery)
            await peer.open()
            await send_at_once(peer, TextMessage(data="a"), TextMessage(data="b"),
                               Ping(payload=b"p"), TextMessage(data="c"))
            replies = [(await peer.next())[1] for _ in range(4)]
            await peer.send(CloseConnection(code=1000))
            await peer.wait_eof()
    assert [getattr(e, "data", None) for e in replies if isinstance(e, TextMessage)] == \
        ["re a", "re b", "re c"]
    assert [item[:2] for item in log.snapshot()[1:8]] == [
        ("start", "a"), ("end", "a"), ("start", "b"), ("end", "b"), ("ping", b"p"),
        ("start", "c"), ("end", "c")]
