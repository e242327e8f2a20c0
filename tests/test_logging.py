"""What an operator reads: one line per connection opened, closed or refused.

Real sockets and the ``websockets`` client; records captured with caplog
and checked field by field (the ``extra=`` attributes a JSON formatter
prints), and ``wskit echo --log-format json`` read from its stderr.
"""

from __future__ import annotations

import json
import logging
import ssl
from typing import Any

import pytest
import trio
import trio.testing
import trustme
import websockets
from _cli_helpers import run_server
from _procs import ws_connect as sync_connect

import wskit
from wskit._io.stats import TLS_LOG_BURST, TLS_LOG_WINDOW, ConnectionLog, Stats

TIMEOUT = 5.0
NO_PING = wskit.Settings(ping_interval=None)


def events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


async def wait_for_event(caplog: pytest.LogCaptureFixture, event: str,
                         count: int = 1) -> list[logging.LogRecord]:
    with trio.fail_after(TIMEOUT):
        # Polled: a log record has no event to wait on.
        while len(events(caplog, event)) < count:  # noqa: ASYNC110
            await trio.sleep(0.01)
    return events(caplog, event)


def echo(out: wskit.Sender) -> Any:
    return out.send


async def test_one_line_when_a_connection_opens_and_one_when_it_closes(
        serve: Any, ws_connect: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    server = await serve(echo, NO_PING)
    async with ws_connect(server.url("/chat?room=1"), compression=None) as client:
        await client.send("hello")
        assert await client.recv() == "hello"
        await client.send(b"\x00" * 300)
        assert await client.recv() == b"\x00" * 300
        await client.aclose(4000, "see you")
    (opened,) = await wait_for_event(caplog, "open")
    (closed,) = await wait_for_event(caplog, "close")

    assert opened.name == closed.name == "wskit.server"
    assert opened.levelno == closed.levelno == logging.INFO
    connection_id = opened.connection_id  # type: ignore[attr-defined]
    assert closed.connection_id == connection_id  # type: ignore[attr-defined]
    assert opened.path == closed.path == "/chat?room=1"  # type: ignore[attr-defined]
    assert opened.remote == "127.0.0.1"  # type: ignore[attr-defined]
    assert opened.peer.startswith("127.0.0.1:")  # type: ignore[attr-defined]
    assert f"connection {connection_id}: opened by 127.0.0.1:" in opened.getMessage()

    fields = closed.__dict__
    assert (fields["close_code"], fields["close_reason"]) == (4000, "see you")
    assert (fields["messages_in"], fields["messages_out"]) == (2, 2)
    # Frames on the wire: masked client frames (6-byte header for <126
    # bytes, 8 for 300) and the close frame come in; unmasked frames go out.
    assert fields["bytes_in"] == (6 + 5) + (8 + 300) + (6 + 2 + 7)  # 334
    assert fields["bytes_out"] == (2 + 5) + (4 + 300)
    assert fields["duration"] >= 0
    assert fields["lost"] is None
    assert "closed 4000 'see you'" in closed.getMessage()
    assert "in 2 msg 334 B, out 2 msg 311 B" in closed.getMessage()
    # Every record of that connection carries its id.
    mine = [r for r in caplog.records if r.name == "wskit.server"]
    assert all(r.connection_id == connection_id for r in mine)  # type: ignore[attr-defined]


async def test_lost_connection_says_why_in_its_close_line(
        serve: Any, raw: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    server = await serve(echo, NO_PING)
    stream, _ = await raw.handshake(server.host, server.port)
    await stream.aclose()  # no close frame
    (closed,) = await wait_for_event(caplog, "close")
    assert closed.close_code == 1006  # type: ignore[attr-defined]
    assert "closed 1006 ABNORMAL '' (lost: end of stream without a close frame)" in \
        closed.getMessage()
    # The reason is in the close line: no separate "lost" line.
    assert len([r for r in caplog.records if r.name == "wskit.server"]) == 2


async def test_a_refused_handshake_is_one_line_with_its_status(
        serve: Any, ws_connect: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    settings = wskit.Settings(allowed_origins={"https://app.example"}, ping_interval=None)
    server = await serve(echo, settings)
    with pytest.raises(websockets.InvalidStatus):
        async with ws_connect(server.url("/x"), origin="https://evil.example"):
            pass
    (refused,) = await wait_for_event(caplog, "refused")
    assert refused.levelno == logging.INFO
    assert refused.status == 403  # type: ignore[attr-defined]
    assert refused.path == "/x"  # type: ignore[attr-defined]
    assert "refused 403 by 127.0.0.1:" in refused.getMessage()
    assert "origin 'https://evil.example' refused" in refused.getMessage()
    assert server.ws.stats.handshake_failures == {403: 1}


async def test_a_failing_factory_is_logged_once_per_connection(
        serve: Any, ws_connect: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wskit")

    def broken(out: wskit.Sender) -> Any:
        raise RuntimeError("no database")

    server = await serve(broken, NO_PING)
    for _ in range(2):
        with pytest.raises(websockets.InvalidStatus):
            async with ws_connect(server.url()):
                pass
    await wait_for_event(caplog, "refused", 2)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 2  # one per connection, with the traceback
    assert all("the factory raised RuntimeError: no database" in r.getMessage()
               and r.exc_info is not None for r in errors)
    assert len({r.connection_id for r in errors}) == 2  # type: ignore[attr-defined]
    assert server.ws.stats.handshake_failures == {500: 2}


async def test_shutdown_says_how_many_connections_it_closed(
        ws_connect: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    async with wskit.WebSocket(echo, NO_PING) as ws:
        _, port = await ws.listen("127.0.0.1:0")
        async with ws_connect(f"ws://127.0.0.1:{port}/"):
            pass
        await wait_for_event(caplog, "close")
        async with ws_connect(f"ws://127.0.0.1:{port}/") as client:
            ws.shutdown()
            with pytest.raises(websockets.ConnectionClosed):
                await client.recv()
    (summary,) = events(caplog, "shutdown")
    assert summary.name == "wskit"
    assert (summary.closed, summary.open_at_shutdown) == (2, 1)  # type: ignore[attr-defined]
    assert summary.getMessage().startswith("shut down: closed 2 connections (1 open")


@pytest.fixture(scope="module")
def tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


async def test_a_failed_tls_handshake_is_an_info_line(
        caplog: pytest.LogCaptureFixture, tls_context: ssl.SSLContext) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    async with wskit.WebSocket(echo, NO_PING) as ws:
        _, port = await ws.listen("127.0.0.1:0", ssl_context=tls_context)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain text to TLS
        (failed,) = await wait_for_event(caplog, "tls_failed")
        await stream.aclose()
        ws.shutdown()
    assert failed.levelno == logging.INFO
    assert "TLS handshake with 127.0.0.1:" in failed.getMessage()
    assert ws.stats.tls_failures == 1


async def test_tls_failure_lines_are_rate_limited(
        mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    stats = Stats()
    log = ConnectionLog(logging.getLogger("wskit.server"), 1)
    for _ in range(TLS_LOG_BURST + 3):
        stats.tls_failed(log, 1, "192.0.2.1:1", "wrong version number")
    assert len(events(caplog, "tls_failed")) == TLS_LOG_BURST
    mock_clock.jump(TLS_LOG_WINDOW)
    stats.tls_failed(log, 1, "192.0.2.1:1", "wrong version number")
    last = events(caplog, "tls_failed")[-1]
    assert last.suppressed == 3  # type: ignore[attr-defined]
    assert last.getMessage().endswith("(3 more not logged)")
    assert stats.tls_failures == TLS_LOG_BURST + 4


def test_serve_log_format_json_prints_one_object_per_line() -> None:
    with run_server("echo", "--log-format", "json") as server:
        with sync_connect(server.url + "/json") as client:
            client.send("hello")
            assert client.recv() == "hello"
        server.errors.until(lambda line: '"event": "close"' in line)
        assert server.stop() == 0
        while server.errors.next() is not None:  # to the end: the shutdown summary
            pass
    records = [json.loads(line) for line in server.errors.seen]  # every line is JSON
    by_event = {r.get("event"): r for r in records}
    opened, closed = by_event["open"], by_event["close"]
    assert opened["logger"] == closed["logger"] == "wskit.server"
    assert opened["level"] == "INFO"
    assert opened["connection_id"] == closed["connection_id"]
    assert closed["path"] == "/json"
    assert (closed["messages_in"], closed["messages_out"], closed["close_code"]) == (1, 1, 1000)
    assert closed["time"].endswith("+00:00")
    assert by_event["shutdown"]["closed"] == 1
