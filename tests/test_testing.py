"""wskit.testing: handlers driven in memory, timers on Trio's MockClock.

Timer, keepalive and closing-handshake logic is tested here through the
real connection driver with ``autojump_clock`` (pytest-trio's
``MockClock(autojump_threshold=0)``): a 30 s timer fires at once in real
time, and the virtual clock says exactly when.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest
import trio
import trio.testing

import wskit
import wskit.testing

ROOT = pathlib.Path(__file__).resolve().parent.parent


class Events:
    """What the server-side handlers saw, in order."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, ...]] = []

    def __call__(self, *item: Any) -> None:
        self.items.append(item)

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [item[1:] for item in self.items if item[0] == name]


def recording(events: Events, **hooks: Any) -> type[wskit.Handler]:
    """A Handler class recording its events, with ``hooks`` overriding some."""

    class Recorded(wskit.Handler):
        def on_open(self, handshake: wskit.Handshake) -> None:
            events("open", handshake.request.path)

        def on_message(self, msg: wskit.Message) -> None:
            events("message", msg)
            self.out.send(msg)

        def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
            events("close", code, reason, trio.current_time())

        def on_error(self, err: wskit.Error) -> None:
            events("error", err.kind, str(err))

        def on_timeout(self, token: Any) -> None:
            events("timeout", token, trio.current_time())
            self.out.send(f"timeout {token}")

        def on_shutdown(self) -> None:
            events("shutdown")

    for name, fn in hooks.items():
        setattr(Recorded, name, fn)
    return Recorded


@pytest.fixture
def events() -> Events:
    return Events()


# ----------------------------------------------------------------------
# Messages


async def test_echo_text_binary_and_large(events: Events) -> None:
    with trio.fail_after(5):
        async with wskit.testing.connect(recording(events), path="/echo?x=1") as client:
            assert not client.closed
            await client.send("héllo")
            reply = await client.receive()
            assert reply == "héllo" and reply.is_text
            await client.send(b"\x00\xff")
            reply = await client.receive()
            assert reply == b"\x00\xff" and reply.is_binary
            big = "wskit " * 100_000  # compressed both ways (deflate offered by default)
            await client.send(big)
            assert await client.receive() == big
        assert events.of("open") == [("/echo?x=1",)]
        assert client.close_code == wskit.CloseCode.NORMAL


async def test_connect_returns_after_on_open_ran() -> None:
    opened: list[str] = []

    class Slow(wskit.Handler):
        async def on_open(self, handshake: wskit.Handshake) -> None:
            for _ in range(10):
                await trio.lowlevel.checkpoint()
            opened.append(handshake.request.path)

    with trio.fail_after(5):
        async with wskit.testing.serve(Slow) as server:
            async with server.connect("/first"):
                assert opened == ["/first"]
            async with wskit.testing.connect(Slow, path="/second"):
                assert opened == ["/first", "/second"]


async def test_send_in_factory_is_delivered_after_open() -> None:
    def factory(out: wskit.Sender) -> Any:
        out.send("first")  # before the handshake: queued
        return lambda msg: out.send(f"echo {msg}")

    with trio.fail_after(5):
        async with wskit.testing.connect(factory) as client:
            assert await client.receive() == "first"
            await client.send("x")
            assert await client.receive() == "echo x"


async def test_async_iteration_ends_at_close() -> None:
    class Counter(wskit.Handler):
        def on_open(self, handshake: wskit.Handshake) -> None:
            for i in range(3):
                self.out.send(str(i))
            self.out.close(wskit.CloseCode.NORMAL, "counted")

    with trio.fail_after(5):
        async with wskit.testing.connect(Counter) as client:
            received = [str(msg) async for msg in client]
        assert received == ["0", "1", "2"]
        assert (client.close_code, client.close_reason) == (1000, "counted")
        with pytest.raises(wskit.testing.ConnectionClosed) as closed:
            await client.receive()
        assert closed.value.kind is wskit.ErrorKind.IO and closed.value.code == 1000
        with pytest.raises(wskit.testing.ConnectionClosed):
            await client.send("too late")


async def test_ping_waits_for_pong_and_on_ping_sees_it(events: Events) -> None:
    Handler = recording(events, on_ping=lambda self, data: events("ping", data))
    with trio.fail_after(5):
        async with wskit.testing.connect(Handler) as client:
            await client.ping(b"are you there")
    assert events.of("ping") == [(b"are you there",)]


async def test_subprotocol_and_headers_reach_on_request() -> None:
    seen: list[wskit.Request] = []

    class Chooser(wskit.Handler):
        def on_request(self, request: wskit.Request) -> wskit.Response:
            seen.append(request)
            return request.accept(subprotocol="chat.v2", headers={"X-Server": "wskit"})

    with trio.fail_after(5):
        async with wskit.testing.connect(Chooser, subprotocols=["chat.v1", "chat.v2"],
                                         headers={"Authorization": "Bearer t"},
                                         origin="https://app.example") as client:
            assert client.subprotocol == "chat.v2"
            assert client.response.status == 101
            assert client.response.headers["x-server"] == "wskit"
    assert seen[0].headers["authorization"] == "Bearer t"
    assert seen[0].origin == "https://app.example"
    assert seen[0].subprotocols == ["chat.v1", "chat.v2"]


# ----------------------------------------------------------------------
# Plain HTTP and rejections


class Site(wskit.Handler):
    def on_request(self, request: wskit.Request) -> wskit.Response | None:
        if request.path == "/":
            return wskit.Response(200, "<h1>hi</h1>", {"Content-Type": "text/html"})
        if request.path == "/private":
            return request.reject(403, "go away\n")
        return None


async def test_plain_http_pages_rejections_and_426() -> None:
    with trio.fail_after(5):
        async with wskit.testing.serve(Site) as server:
            page = await server.request("/")
            assert (page.status, page.body) == (200, b"<h1>hi</h1>")
            assert page.headers["content-type"] == "text/html"
            assert (await server.request("/ws")).status == 426
            posted = await server.request("/", method="POST", body="data")
            assert posted.status == 200

            with pytest.raises(wskit.Error) as rejected:
                await server.connect("/private")
            assert rejected.value.kind is wskit.ErrorKind.HTTP
            assert rejected.value.status == 403 and "go away" in str(rejected.value)
            assert server.connections == 0


# ----------------------------------------------------------------------
# Timers on the mock clock


async def test_timer_fires_after_its_delay_in_virtual_time(
        events: Events, autojump_clock: trio.testing.MockClock) -> None:
    def on_open(self: wskit.Handler, handshake: wskit.Handshake) -> None:
        self.out.timeout(30, "late")
        self.out.timeout(10, "early")

    start = trio.current_time()
    with trio.fail_after(100):  # virtual seconds
        async with wskit.testing.connect(recording(events, on_open=on_open)) as client:
            assert await client.receive() == "timeout early"
            assert trio.current_time() - start == pytest.approx(10)
            assert await client.receive() == "timeout late"
            assert trio.current_time() - start == pytest.approx(30)
    assert [token for token, _ in events.of("timeout")] == ["early", "late"]


async def test_cancelled_timer_never_fires(
        events: Events, autojump_clock: trio.testing.MockClock) -> None:
    def on_open(self: wskit.Handler, handshake: wskit.Handshake) -> None:
        doomed = self.out.timeout(5, "doomed")
        self.out.timeout(20, "kept")
        doomed.cancel()

    with trio.fail_after(100):
        async with wskit.testing.connect(recording(events, on_open=on_open)) as client:
            assert await client.receive() == "timeout kept"
            await trio.sleep(60)  # virtual: long past both deadlines
            assert client.receive_nowait() is None
    assert [token for token, _ in events.of("timeout")] == ["kept"]


async def test_timer_rearmed_from_on_timeout_ticks_periodically(
        autojump_clock: trio.testing.MockClock) -> None:
    class Ticker(wskit.Handler):
        ticks = 0

        def on_open(self, handshake: wskit.Handshake) -> None:
            self.out.timeout(1.5, "tick")

        def on_timeout(self, token: Any) -> None:
            self.ticks += 1
            self.out.send(f"{self.ticks} at {trio.current_time():.1f}")
            if self.ticks < 3:
                self.out.timeout(1.5, "tick")
            else:
                self.out.close(wskit.CloseCode.NORMAL, "done ticking")

    start = trio.current_time()
    with trio.fail_after(100):
        async with wskit.testing.connect(Ticker) as client:
            got = [str(msg) async for msg in client]
    assert got == [f"{n} at {start + 1.5 * n:.1f}" for n in (1, 2, 3)]
    assert client.close_reason == "done ticking"


async def test_timer_set_on_a_closed_connection_raises_timer_error(
        autojump_clock: trio.testing.MockClock) -> None:
    outs: list[wskit.Sender] = []

    def factory(out: wskit.Sender) -> Any:
        outs.append(out)
        return lambda msg: None

    with trio.fail_after(100):
        async with wskit.testing.connect(factory) as client:
            pass
        assert client.closed
        with pytest.raises(wskit.Error) as raised:
            outs[0].timeout(1, "x")
        assert raised.value.kind is wskit.ErrorKind.TIMER


# ----------------------------------------------------------------------
# Keepalive on the mock clock


async def test_keepalive_pings_on_schedule_and_stays_open(
        autojump_clock: trio.testing.MockClock) -> None:
    settings = wskit.Settings(ping_interval=20, ping_timeout=5)
    start = trio.current_time()
    with trio.fail_after(1000):
        async with wskit.testing.connect(lambda out: out.send, settings=settings) as client:
            await trio.sleep(101)  # virtual
            assert len(client.pings) == 5  # at 20, 40, 60, 80, 100 s
            assert not client.closed
            await client.send("still here")
            assert await client.receive() == "still here"
    assert trio.current_time() - start == pytest.approx(101)


async def test_unanswered_ping_closes_after_ping_timeout(
        events: Events, autojump_clock: trio.testing.MockClock) -> None:
    settings = wskit.Settings(ping_interval=20, ping_timeout=5, close_timeout=3)
    start = trio.current_time()
    with trio.fail_after(1000):
        async with wskit.testing.connect(recording(events), settings=settings,
                                         answer_pings=False) as client:
            code, reason = await client.wait_closed()
    assert len(client.pings) == 1
    assert (code, reason) == (wskit.CloseCode.ERROR, "keepalive ping timeout")
    # The server gave up at 20 + 5 s and reports the peer as gone.
    [(server_code, _, at)] = events.of("close")
    assert server_code == wskit.CloseCode.ABNORMAL
    assert at - start == pytest.approx(25)


# ----------------------------------------------------------------------
# Closing handshake


async def test_client_closes_server_sees_code_and_reason(events: Events) -> None:
    with trio.fail_after(5):
        async with wskit.testing.connect(recording(events)) as client:
            await client.close(4001, "bye now")
            assert client.closed
            # The server echoes the code of the peer that closed first.
            assert (client.close_code, client.close_reason) == (4001, "bye now")
    assert [c[:2] for c in events.of("close")] == [(4001, "bye now")]


async def test_server_closes_client_echoes(events: Events) -> None:
    def on_message(self: wskit.Handler, msg: wskit.Message) -> None:
        self.out.close(wskit.CloseCode.POLICY, f"no {msg}")

    with trio.fail_after(5):
        async with wskit.testing.connect(recording(events, on_message=on_message)) as client:
            await client.send("thanks")
            assert await client.wait_closed() == (wskit.CloseCode.POLICY, "no thanks")
    assert [c[:2] for c in events.of("close")] == [(wskit.CloseCode.POLICY, "no thanks")]


async def test_dropped_stream_is_1006_on_the_server(events: Events) -> None:
    with trio.fail_after(5):
        async with wskit.testing.serve(recording(events)) as server:
            client = await server.connect("/")
            await client.send("x")
            assert await client.receive() == "x"
            await client.abort()
            assert client.close_code == wskit.CloseCode.ABNORMAL
    assert [c[:2] for c in events.of("close")] == [(wskit.CloseCode.ABNORMAL, "")]


async def test_handler_error_closes_with_1011_and_reaches_on_error(events: Events) -> None:
    def on_message(self: wskit.Handler, msg: wskit.Message) -> None:
        raise ValueError("boom")

    with trio.fail_after(5):
        async with wskit.testing.connect(recording(events, on_message=on_message)) as client:
            await client.send("x")
            code, reason = await client.wait_closed()
    assert (code, reason) == (wskit.CloseCode.ERROR, "handler error")
    [(kind, text)] = events.of("error")
    assert kind is wskit.ErrorKind.CUSTOM and "boom" in text


async def test_leaving_serve_shuts_down_with_1001(events: Events) -> None:
    with trio.fail_after(5):
        async with wskit.testing.serve(recording(events)) as server:
            first = await server.connect("/a")
            second = await server.connect("/b")
            assert server.connections == 2
    for client in (first, second):
        assert client.close_code == wskit.CloseCode.AWAY
    assert len(events.of("shutdown")) == 2
    assert sorted(c[0] for c in events.of("close")) == [1001, 1001]


async def test_close_timeout_when_the_peer_never_answers(
        events: Events, autojump_clock: trio.testing.MockClock) -> None:
    def on_message(self: wskit.Handler, msg: wskit.Message) -> None:
        self.out.close(wskit.CloseCode.NORMAL, "closing")

    settings = wskit.Settings(close_timeout=7, ping_interval=None)
    start = trio.current_time()
    with trio.fail_after(1000):
        async with wskit.testing.connect(recording(events, on_message=on_message),
                                         settings=settings, answer_close=False) as client:
            await client.send("close please")
            # The client got the close frame but never answers: the server
            # waits close_timeout, then drops the stream.
            assert await client.wait_closed() == (wskit.CloseCode.NORMAL, "closing")
    [(code, _, at)] = events.of("close")
    assert code == wskit.CloseCode.ABNORMAL
    assert at - start == pytest.approx(7)


# ----------------------------------------------------------------------
# Many clients, backpressure, the fixture


async def test_broadcast_reaches_every_client() -> None:
    def factory(out: wskit.Sender) -> Any:
        return lambda msg: out.broadcast(msg)

    with trio.fail_after(5):
        async with wskit.testing.serve(factory) as server:
            async with server.connect("/") as a, server.connect("/") as b, \
                    server.connect("/") as c:
                await a.send("to all")
                for client in (a, b, c):
                    assert await client.receive() == "to all"
                server.ws.broadcaster().send(b"from the server")
                for client in (a, b, c):
                    assert await client.receive() == b"from the server"


async def test_sending_past_max_send_queue_raises_queue_error() -> None:
    errors: list[wskit.Error] = []
    flooded = trio.Event()

    class Flood(wskit.Handler):
        def on_message(self, msg: wskit.Message) -> None:
            try:
                for _ in range(100):
                    self.out.send("x" * 1000)
            except wskit.Error as err:
                errors.append(err)
            flooded.set()

    settings = wskit.Settings(max_send_queue=10_000, compression=None)
    with trio.fail_after(5):
        async with wskit.testing.serve(Flood, settings=settings) as server:
            # lockstep: no buffer between the two ends, like a full socket.
            client = await server.connect("/", lockstep=True, compression=False)
            await client.send("go")
            await flooded.wait()
            assert errors and errors[0].kind is wskit.ErrorKind.QUEUE
            assert "max_send_queue=10000" in str(errors[0])
            # What was queued before the limit still arrives, in order.
            for _ in range(10):
                assert await client.receive() == "x" * 1000


async def test_wskit_serve_fixture(wskit_serve: Any,
                                   autojump_clock: trio.testing.MockClock) -> None:
    class Greeter(wskit.Handler):
        def on_open(self, handshake: wskit.Handshake) -> None:
            self.out.timeout(60, None)

        def on_timeout(self, token: Any) -> None:
            self.out.send("a minute passed")

    server = await wskit_serve(Greeter, settings=wskit.Settings(ping_interval=None))
    assert isinstance(server, wskit.testing.Server)
    with trio.fail_after(100):
        client = await server.connect("/")
        assert await client.receive() == "a minute passed"
    # Left open on purpose: the fixture closes it with 1001 after the test.


def test_public_names_are_documented() -> None:
    for name in wskit.testing.__all__:
        assert getattr(wskit.testing, name).__doc__, name


def test_example_test_file_passes() -> None:
    """examples/test_my_handler.py, the documented example, passes as users run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(ROOT / "examples" / "test_my_handler.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
