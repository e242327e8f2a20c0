"""Reconnecting clients against real servers that are stopped and restarted.

The servers are a wskit ``WebSocket`` and a ``websockets`` server in the
test's Trio run, and the ``wskit echo`` command in a subprocess. What is
checked: the same handler object and ``Sender`` carry on; ``on_open`` and
``on_close`` bracket each connection; messages sent while disconnected
arrive after the reconnect, in order; the server's wishes (1001, 1013 with a
delay, 503 with ``Retry-After``) are honoured; stop codes and statuses end
it. Delays are kept short; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
import websockets.trio.server
from websockets.http11 import Request as WsRequest

import wskit

TIMEOUT = 8.0
QUIET = wskit.Settings(shutdown_on_interrupt=False)
#: Fast enough for tests, still exponential with full jitter.
FAST = wskit.Reconnect(initial_delay=0.05, max_delay=0.5, server_delay=0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Client(wskit.Handler):
    """Records each hook in ``log``; counts how many were made."""

    made: list[Client]

    def __init__(self, out: wskit.Sender, log: Any) -> None:
        super().__init__(out)
        self.log = log
        self.opens = 0

    def on_open(self, handshake: wskit.Handshake) -> None:
        self.opens += 1
        self.log("open", self.opens, id(self))

    def on_message(self, msg: wskit.Message) -> None:
        self.log("message", str(msg) if msg.is_text else repr(bytes(msg)))

    def on_close(self, code: int, reason: str) -> None:
        self.log("close", int(code), reason)

    def on_error(self, err: wskit.Error) -> None:
        self.log("error", err)

    def on_reconnecting(self, attempt: int, delay: float, error: wskit.Error) -> None:
        self.log("reconnecting", attempt, delay, error, trio.current_time())


class Factory(wskit.Factory):
    def __init__(self, log: Any, cls: type[Client] = Client) -> None:
        self.log = log
        self.cls = cls
        self.made: list[Client] = []

    def connection_made(self, out: wskit.Sender) -> Client:
        handler = self.cls(out, self.log)
        self.made.append(handler)
        return handler

    def connection_lost(self, handler: Any) -> None:
        self.log("lost", id(handler))


# ----------------------------------------------------------------------
# A wskit server that can be stopped and started again on its port


@dataclasses.dataclass
class Restartable:
    nursery: trio.Nursery
    factory: Any
    port: int = dataclasses.field(default_factory=free_port)
    ws: wskit.WebSocket | None = None
    exited: trio.Event | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        await self.nursery.start(self._run)

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        self.exited = exited = trio.Event()
        try:
            async with wskit.WebSocket(self.factory, QUIET) as ws:
                self.ws = ws
                await ws.listen(("127.0.0.1", self.port))
                task_status.started()
        finally:
            exited.set()

    async def stop(self) -> None:
        """Shut down: every connection gets 1001, like a deploy."""
        assert self.ws is not None and self.exited is not None
        self.ws.shutdown()
        with trio.fail_after(TIMEOUT):
            await self.exited.wait()


class EchoServer:
    """Echoes with a prefix; records (connection number, message) in order."""

    def __init__(self) -> None:
        self.received: list[tuple[int, str]] = []
        self.connections = 0
        self.senders: list[wskit.Sender] = []
        self.changed = trio.Event()

    def __call__(self, out: wskit.Sender) -> Callable[[wskit.Message], None]:
        self.connections += 1
        number = self.connections
        self.senders.append(out)

        def on_message(msg: wskit.Message) -> None:
            self.received.append((number, str(msg)))
            self.changed.set()
            out.send(f"echo {msg}")

        return on_message

    async def wait(self, count: int) -> list[tuple[int, str]]:
        with trio.fail_after(TIMEOUT):
            while len(self.received) < count:
                self.changed = trio.Event()
                await self.changed.wait()
        return self.received


@pytest.fixture
async def wskit_server(nursery: trio.Nursery) -> AsyncIterator[tuple[Restartable, EchoServer]]:
    echo = EchoServer()
    server = Restartable(nursery, echo)
    await server.start()
    yield server, echo
    if server.exited is not None and not server.exited.is_set():
        await server.stop()


@contextlib.asynccontextmanager
async def client(factory: Any, settings: wskit.Settings = QUIET
                 ) -> AsyncIterator[wskit.WebSocket]:
    with trio.fail_after(3 * TIMEOUT):
        async with wskit.WebSocket(factory, settings) as ws:
            yield ws


# ----------------------------------------------------------------------
# The gap: same handler, same Sender, outbox in order


async def test_restarted_wskit_server_gets_the_gap_messages_in_order(
    wskit_server: tuple[Restartable, EchoServer], log: Any
) -> None:
    server, echo = wskit_server
    factory = Factory(log)
    async with client(factory) as ws:
        out = await ws.connect(server.url, reconnect=FAST)
        out.send("before")
        await echo.wait(1)
        await server.stop()
        await log.wait("close")
        assert log.of("close") == [(1001, "server shutting down")]
        for i in range(4):
            out.send(f"gap {i}")  # nothing is open: into the outbox, no error
        await trio.to_thread.run_sync(out.send, "gap 4")  # from another thread too
        assert out.queued_bytes == 5 * len("gap 0")
        await server.start()
        await echo.wait(6)
        assert echo.received == [(1, "before")] + [(2, f"gap {i}") for i in range(5)]
        await log.wait("message", 6)
        assert [m for (m,) in log.of("message")] == ["echo before"] + [
            f"echo gap {i}" for i in range(5)]
        # One handler, opened twice, through the same Sender.
        assert len(factory.made) == 1
        handler = factory.made[0]
        assert handler.out is out and handler.opens == 2
        assert log.of("open") == [(1, id(handler)), (2, id(handler))]
        (attempt, delay, error, _), *_ = log.of("reconnecting")
        assert attempt == 1
        assert isinstance(error, wskit.ConnectionClosed) and error.code == 1001
        assert FAST.server_delay <= delay <= 1.5 * FAST.server_delay  # 1001: the server's wish
        assert echo.senders[0].connection_id != echo.senders[1].connection_id
        out.close()
        with pytest.raises(wskit.Error) as caught:
            out.send("after close")  # raises at once, as without reconnect=
        assert caught.value.kind is wskit.ErrorKind.QUEUE
    # Closed by the application: no reconnect, the factory hears once.
    assert log.of("lost") == [(id(handler),)]
    assert log.names().count("close") == 2
    with pytest.raises(wskit.Error) as caught:
        out.send("after the end")
    assert caught.value.kind is wskit.ErrorKind.QUEUE


async def test_restarted_websockets_server(nursery: trio.Nursery, log: Any) -> None:
    received: list[str] = []
    port = free_port()

    async def handler(conn: Any) -> None:
        async for message in conn:
            received.append(message)
            await conn.send(message)  # text as text, binary as binary

    async def start() -> Any:
        return await nursery.start(functools.partial(
            websockets.trio.server.serve, handler, port, host="127.0.0.1"))

    peer = await start()
    factory = Factory(log)
    async with client(factory) as ws:
        out = await ws.connect(f"ws://127.0.0.1:{port}/", reconnect=FAST)
        out.send("one")
        await log.wait("message")
        with trio.fail_after(TIMEOUT):
            await peer.aclose()  # closes its connections with 1001
        await log.wait("close")
        assert log.of("close")[0][0] == 1001
        out.send("two")
        out.send(b"three")
        peer = await start()
        await log.wait("message", 3)
        assert [m for (m,) in log.of("message")] == ["one", "two", "b'three'"]
        assert received == ["one", "two", b"three"]
        assert len(factory.made) == 1 and factory.made[0].opens == 2
        out.close()
    with trio.fail_after(TIMEOUT):
        await peer.aclose()


@pytest.mark.slow
async def test_wskit_echo_process_restarted_and_killed(log: Any) -> None:
    """A real ``wskit echo`` process: stopped with SIGINT (1001), started
    again, then killed (no close frame: 1006, plain backoff)."""
    from _cli_helpers import run_server

    port = free_port()

    async def start() -> Any:
        manager = run_server("echo", port=port)
        server = await trio.to_thread.run_sync(manager.__enter__)
        return manager, server

    manager, server = await start()
    factory = Factory(log)
    try:
        async with client(factory) as ws:
            out = await ws.connect(f"ws://127.0.0.1:{port}/", reconnect=FAST)
            out.send("a")
            await log.wait("message")
            assert await trio.to_thread.run_sync(server.stop) == 0
            await log.wait("close")
            out.send("b")
            out.send("c")
            await trio.to_thread.run_sync(manager.__exit__, None, None, None)
            manager, server = await start()
            await log.wait("message", 3)
            server.proc.kill()
            await log.wait("close", 2)
            out.send("d")
            await trio.to_thread.run_sync(manager.__exit__, None, None, None)
            manager, server = await start()
            await log.wait("message", 4, seconds=TIMEOUT)
            assert [m for (m,) in log.of("message")] == ["a", "b", "c", "d"]
            assert [code for code, _ in log.of("close")] == [1001, 1006]
            killed = [e for _, _, e, _ in log.of("reconnecting")
                      if isinstance(e, wskit.ConnectionClosed) and e.code == 1006]
            assert killed, log.of("reconnecting")
            assert factory.made[0].opens == 3
            out.close()
    finally:
        await trio.to_thread.run_sync(manager.__exit__, None, None, None)


# ----------------------------------------------------------------------
# What the server asks for


class Closer(wskit.Handler):
    """Server side: closes with the code and reason in the first message."""

    def on_message(self, msg: wskit.Message) -> None:
        code, _, reason = str(msg).partition(" ")
        self.out.close(int(code), reason)


async def test_1013_with_a_delay_is_honoured(serve: Any, log: Any) -> None:
    server = await serve(Closer, QUIET)
    factory = Factory(log)
    async with client(factory) as ws:
        out = await ws.connect(server.url(), reconnect=FAST)
        out.send("1013 overloaded, retry-after=0.4")
        await log.wait("open", 2)
        out.close()
    (attempt, delay, error, _), = log.of("reconnecting")
    assert (attempt, error.code, error.reason) == (1, 1013, "overloaded, retry-after=0.4")
    assert 0.4 <= delay <= 0.6  # the wish, spread upwards by at most half


async def test_the_delay_is_waited(serve: Any, log: Any) -> None:
    opened: list[float] = []

    class Timed(Client):
        def on_open(self, handshake: wskit.Handshake) -> None:
            opened.append(trio.current_time())
            super().on_open(handshake)

    server = await serve(Closer, QUIET)
    async with client(Factory(log, Timed)) as ws:
        out = await ws.connect(server.url(), reconnect=wskit.Reconnect(jitter=None))
        out.send("1012 retry-after: 0.3")
        await log.wait("open", 2)
        (_, delay, _, decided_at), = log.of("reconnecting")
        assert delay == 0.3
        # A lower bound only: trio never wakes a sleeper early.
        assert opened[1] - decided_at >= 0.3
        out.close()


@pytest.mark.parametrize("code", [1008, 4001])
async def test_stop_codes_end_it(serve: Any, log: Any, code: int) -> None:
    server = await serve(Closer, QUIET)
    factory = Factory(log)
    policy = wskit.Reconnect(initial_delay=0.05, stop_codes={1008, 4001})
    async with client(factory) as ws:
        out = await ws.connect(server.url(), reconnect=policy)
        out.send(f"{code} go away")
        await log.wait("lost")
    assert log.of("close") == [(code, "go away")]
    assert log.of("reconnecting") == []
    with pytest.raises(wskit.Error):
        out.send("too late")


def _answer_503(statuses: list[int], limit: int) -> Callable[[Any, WsRequest], Any]:
    def process_request(conn: Any, request: WsRequest) -> Any:
        if len(statuses) < limit:
            statuses.append(503)
            response = conn.respond(503, "busy, come back later\n")
            response.headers["Retry-After"] = "1"
            return response
        return None
    return process_request


@pytest.mark.slow
async def test_503_with_retry_after_is_honoured(ws_server: Any, log: Any) -> None:
    statuses: list[int] = []

    async def echo(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)

    peer = await ws_server(echo, process_request=_answer_503(statuses, 2))
    factory = Factory(log)
    async with client(factory) as ws:
        out = await ws.connect(peer.url(), reconnect=FAST)  # retried until accepted
        out.send("through")
        await log.wait("message")
        out.close()
    seen = log.of("reconnecting")
    assert [a for a, _, _, _ in seen] == [1, 2]
    for _, delay, error, _ in seen:
        assert error.kind is wskit.ErrorKind.HTTP and error.status == 503
        assert error.response.headers["Retry-After"] == "1"
        assert b"come back later" in error.response.body
        assert 1.0 <= delay <= 1.5
    assert statuses == [503, 503] and factory.made[0].opens == 1


async def test_stop_status_raises_from_connect(ws_server: Any, log: Any) -> None:
    def forbid(conn: Any, request: WsRequest) -> Any:
        return conn.respond(403, "no\n")

    async def never(conn: Any) -> None:  # pragma: no cover - never accepted
        await conn.close()

    peer = await ws_server(never, process_request=forbid)
    factory = Factory(log)
    async with client(factory) as ws:
        with pytest.raises(wskit.Error) as caught:
            await ws.connect(peer.url(), reconnect=FAST)
    assert caught.value.status == 403
    assert log.of("reconnecting") == []
    assert log.of("lost") == [(id(factory.made[0]),)]


# ----------------------------------------------------------------------
# The handler decides


async def test_on_reconnecting_changes_the_delay_or_stops(
    wskit_server: tuple[Restartable, EchoServer], log: Any
) -> None:
    server, _ = wskit_server
    answers: list[Any] = [0.01, 0, False]

    class Deciding(Client):
        async def on_reconnecting(self, attempt: int, delay: float,
                                  error: wskit.Error) -> Any:
            await trio.lowlevel.checkpoint()  # async hooks are awaited
            super().on_reconnecting(attempt, delay, error)
            return answers.pop(0)

    async with client(Factory(log, Deciding)) as ws:
        await ws.connect(server.url, reconnect=FAST)
        await server.stop()
        await log.wait("lost")
    assert [a for a, _, _, _ in log.of("reconnecting")] == [1, 2, 3]
    assert answers == []


@pytest.mark.parametrize("answer", ["soon", -1])
async def test_on_reconnecting_bad_answer_stops_with_usage_error(
    wskit_server: tuple[Restartable, EchoServer], log: Any, answer: Any
) -> None:
    server, _ = wskit_server

    class Wrong(Client):
        def on_reconnecting(self, attempt: int, delay: float, error: wskit.Error) -> Any:
            return answer

    async with client(Factory(log, Wrong)) as ws:
        await ws.connect(server.url, reconnect=FAST)
        await server.stop()
        await log.wait("lost")
    (err,), = log.of("error")
    assert err.kind is wskit.ErrorKind.USAGE and "on_reconnecting returned" in str(err)


async def test_on_reconnecting_raising_stops(
    wskit_server: tuple[Restartable, EchoServer], log: Any
) -> None:
    server, _ = wskit_server

    class Raising(Client):
        def on_close(self, code: int, reason: str) -> None:
            super().on_close(code, reason)
            self.out.send("queued, then given up")  # nothing open: the outbox

        def on_reconnecting(self, attempt: int, delay: float, error: wskit.Error) -> Any:
            raise RuntimeError("no more")

    async with client(Factory(log, Raising)) as ws:
        await ws.connect(server.url, reconnect=FAST)
        await server.stop()
        await log.wait("lost")
    errors = [err for (err,) in log.of("error")]
    assert errors[0].kind is wskit.ErrorKind.CUSTOM
    assert isinstance(errors[0].__cause__, RuntimeError)
    # What the outbox held is reported, never dropped silently.
    assert errors[1].kind is wskit.ErrorKind.QUEUE and "1 message(s)" in str(errors[1])


async def test_build_request_runs_for_each_attempt(serve: Any, log: Any) -> None:
    tokens: list[str | None] = []

    class Check(wskit.Handler):
        def on_request(self, request: wskit.Request) -> None:
            tokens.append(request.headers.get("Authorization"))

        def on_message(self, msg: wskit.Message) -> None:
            self.out.close(1012)

    class Auth(Client):
        issued = 0

        def build_request(self, url: str) -> wskit.Request:
            Auth.issued += 1
            return wskit.Request.for_url(url, headers=[("Authorization",
                                                        f"Bearer {Auth.issued}")])

    server = await serve(Check, QUIET)
    async with client(Factory(log, Auth)) as ws:
        out = await ws.connect(server.url(),
                               reconnect=wskit.Reconnect(server_delay=0.01, initial_delay=0.01))
        out.send("restart")
        await log.wait("open", 2)
        out.close()
    assert tokens == ["Bearer 1", "Bearer 2"]


# ----------------------------------------------------------------------
# The outbox


async def test_outbox_is_bounded(wskit_server: tuple[Restartable, EchoServer],
                                 log: Any) -> None:
    server, echo = wskit_server
    settings = wskit.Settings(shutdown_on_interrupt=False, max_send_queue=1000)
    async with client(Factory(log), settings) as ws:
        out = await ws.connect(server.url, reconnect=FAST)
        await server.stop()
        await log.wait("close")
        for _ in range(10):
            out.send("x" * 100)  # exactly max_send_queue...
        with pytest.raises(wskit.Error) as caught:
            out.send("x")  # ...then QUEUE, as on an open connection
        assert caught.value.kind is wskit.ErrorKind.QUEUE
        await server.start()
        await echo.wait(10)
        assert echo.received == [(2, "x" * 100)] * 10
        out.close()


async def test_flush_waits_for_the_next_connection(
    wskit_server: tuple[Restartable, EchoServer], log: Any
) -> None:
    server, echo = wskit_server
    settings = wskit.Settings(shutdown_on_interrupt=False, max_send_queue=100)
    async with client(Factory(log), settings) as ws:
        out = await ws.connect(server.url, reconnect=FAST)
        await server.stop()
        await log.wait("close")
        out.send("y" * 100)  # the outbox is full now
        flushed = trio.Event()

        async def flush() -> None:
            await out.flush()
            flushed.set()

        ws.spawn(flush)
        await trio.sleep(0.2)
        assert not flushed.is_set()
        await server.start()
        with trio.fail_after(TIMEOUT):
            await flushed.wait()
        await echo.wait(1)
        out.close()


async def test_drop_outbox(wskit_server: tuple[Restartable, EchoServer], log: Any) -> None:
    server, echo = wskit_server
    policy = dataclasses.replace(FAST, drop_outbox=True)
    async with client(Factory(log)) as ws:
        out = await ws.connect(server.url, reconnect=policy)
        await server.stop()
        await log.wait("close")
        out.send("stale 1")
        out.send("stale 2")
        await server.start()
        await log.wait("open", 2)
        out.send("fresh")
        await echo.wait(1)
        await log.wait("error")
        out.close()
    assert echo.received == [(2, "fresh")]
    (err,), = log.of("error")
    assert err.kind is wskit.ErrorKind.QUEUE and "2 message(s)" in str(err)


async def test_close_while_waiting_stops_at_once(log: Any) -> None:
    factory = Factory(log)
    async with client(factory) as ws:
        # Nothing listens: the client waits a long time between attempts.
        ws.broadcaster().connect(f"ws://127.0.0.1:{free_port()}/",
                                 reconnect=wskit.Reconnect(initial_delay=60, jitter=None))
        await log.wait("reconnecting")
        (handler,) = factory.made
        handler.out.send("never sent")
        handler.out.close()
        await log.wait("lost")
    errors = [err for (err,) in log.of("error")]
    assert errors[-1].kind is wskit.ErrorKind.QUEUE and "1 message(s)" in str(errors[-1])


async def test_shutdown_while_waiting_ends_promptly(log: Any) -> None:
    with trio.fail_after(TIMEOUT):
        async with wskit.WebSocket(Factory(log), QUIET) as ws:
            ws.broadcaster().connect(f"ws://127.0.0.1:{free_port()}/",
                                     reconnect=wskit.Reconnect(initial_delay=600, jitter=None))
            await log.wait("reconnecting")
            ws.shutdown()
    assert len(log.of("lost")) == 1


async def test_blocking_connect_returns_when_reconnecting_stops(serve: Any,
                                                                log: Any) -> None:
    server = await serve(Closer, QUIET)

    class Once(Client):
        def on_open(self, handshake: wskit.Handshake) -> None:
            super().on_open(handshake)
            self.out.send("1012" if self.opens == 1 else "1008 enough")

    factory = Factory(log, Once)
    policy = wskit.Reconnect(initial_delay=0.01, server_delay=0.01)
    with trio.fail_after(TIMEOUT):
        await trio.to_thread.run_sync(functools.partial(
            wskit.connect, server.url(), factory, settings=QUIET, reconnect=policy))
    assert [code for code, _ in log.of("close")] == [1012, 1008]
    assert len(factory.made) == 1 and factory.made[0].opens == 2
    with pytest.raises(wskit.Error) as caught:
        wskit.connect(server.url(), factory, reconnect="yes")  # type: ignore[arg-type]
    assert caught.value.kind is wskit.ErrorKind.USAGE


# ----------------------------------------------------------------------
# Many clients after a deploy


@pytest.mark.slow
async def test_hundred_clients_spread_their_reconnects(
    wskit_server: tuple[Restartable, EchoServer], log: Any
) -> None:
    """100 clients get 1001 from a server that shuts down and comes back at
    once. Each waits the server's wish (0.5 s) spread by full jitter over
    [0.5, 0.75] s; what each sent while disconnected arrives afterwards.

    Asserted on the delays the clients chose (the spread cannot come out
    narrower by chance: 100 uniform draws in a window all falling in half of
    it has probability ~1e-30); the measured span of the re-opens is in the
    failure message, not asserted (no timing assertions)."""
    server, echo = wskit_server
    reopened: list[float] = []

    class Many(Client):
        def on_open(self, handshake: wskit.Handshake) -> None:
            super().on_open(handshake)
            if self.opens == 2:
                reopened.append(trio.current_time())

        def on_message(self, msg: wskit.Message) -> None:
            pass

        def on_close(self, code: int, reason: str) -> None:
            super().on_close(code, reason)
            self.out.send(f"back {self.out.connection_id}")

    factory = Factory(log, Many)
    policy = wskit.Reconnect(initial_delay=0.2, server_delay=0.5)
    async with client(factory) as ws:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                for _ in range(100):
                    nursery.start_soon(functools.partial(ws.connect, server.url,
                                                         reconnect=policy))
        await server.stop()
        await server.start()
        await log.wait("open", 200, seconds=3 * TIMEOUT)
        await echo.wait(100)
        for handler in factory.made:
            handler.out.close()
    first = [d for a, d, _, _ in log.of("reconnecting") if a == 1]
    assert len(first) == 100 and len(set(first)) == 100
    assert all(0.5 <= d <= 0.75 for d in first)
    span = max(reopened) - min(reopened)
    assert max(first) - min(first) > 0.125, f"re-opens spanned {span:.3f}s"
    # Each client's gap message arrived, on its new connection.
    assert sorted(m for _, m in echo.received) == sorted(
        f"back {h.out.connection_id}" for h in factory.made)
    assert all(number > 100 for number, _ in echo.received)


# ----------------------------------------------------------------------
# What cannot be retried


async def test_bad_url_is_not_retried(log: Any) -> None:
    async with client(Factory(log)) as ws:
        with pytest.raises(wskit.Error) as caught:
            await ws.connect("http://127.0.0.1:1/", reconnect=FAST)
    assert caught.value.kind is wskit.ErrorKind.USAGE
    assert log.of("reconnecting") == []


async def test_a_failing_factory_is_not_retried(serve: Any) -> None:
    made = 0

    def factory(out: wskit.Sender) -> Any:
        nonlocal made
        made += 1
        raise RuntimeError("no handler today")

    server = await serve(Closer, QUIET)
    async with client(factory) as ws:
        with pytest.raises(wskit.Error) as caught:
            await ws.connect(server.url(), reconnect=FAST)
    assert caught.value.kind is wskit.ErrorKind.CUSTOM and made == 1


async def test_failed_attempts_reach_on_error_and_on_reconnecting(log: Any) -> None:
    policy = wskit.Reconnect(initial_delay=0.01, max_attempts=2)
    async with client(Factory(log)) as ws:
        with pytest.raises(wskit.Error):
            await ws.connect(f"ws://127.0.0.1:{free_port()}/", reconnect=policy)
    errors = [err for (err,) in log.of("error")]
    assert [e.kind for e in errors] == [wskit.ErrorKind.IO] * 3  # first try + 2 attempts
    assert [e for _, _, e, _ in log.of("reconnecting")] == errors[:2]


async def test_a_plain_callable_handler_reconnects(serve: Any) -> None:
    """No ``on_reconnecting``: the policy's delay is waited as it is."""
    got: list[str] = []
    done = trio.Event()

    def factory(out: wskit.Sender) -> Callable[[wskit.Message], None]:
        out.send("restart, please")  # queued before the first open

        def on_message(msg: wskit.Message) -> None:
            got.append(str(msg))
            done.set()

        return on_message

    connections = 0

    class Restarter(wskit.Handler):
        def on_open(self, handshake: wskit.Handshake) -> None:
            nonlocal connections
            connections += 1
            if connections == 2:
                self.out.send("welcome back")

        def on_message(self, msg: wskit.Message) -> None:
            self.out.close(1012)

    server = await serve(Restarter, QUIET)
    async with client(factory) as ws:
        out = await ws.connect(server.url(), reconnect=FAST)
        with trio.fail_after(TIMEOUT):
            await done.wait()
        out.close()
    assert got == ["welcome back"] and connections == 2


async def test_shutdown_while_open_ends_it(serve: Any, log: Any) -> None:
    server = await serve(lambda out: out.send, QUIET)
    async with client(Factory(log)) as ws:
        await ws.connect(server.url(), reconnect=FAST)
        ws.shutdown()
    assert log.of("close") == [(1001, "going away")]
    assert log.of("reconnecting") == []
    assert len(log.of("lost")) == 1


async def test_timers_set_while_disconnected_start_on_the_next_connection(
    wskit_server: tuple[Restartable, EchoServer], log: Any
) -> None:
    server, _ = wskit_server

    class Timed(Client):
        def on_close(self, code: int, reason: str) -> None:
            super().on_close(code, reason)
            if self.opens == 1:
                self.out.timeout(0, "set while disconnected")

        def on_timeout(self, token: Any) -> None:
            self.log("timeout", token, self.opens)

    async with client(Factory(log, Timed)) as ws:
        out = await ws.connect(server.url, reconnect=FAST)
        await server.stop()
        await log.wait("close")
        await trio.sleep(0.05)
        assert log.of("timeout") == []  # not while nothing is open
        await server.start()
        await log.wait("timeout")
        out.close()
    assert log.of("timeout") == [("set while disconnected", 2)]
