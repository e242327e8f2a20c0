"""Smoke tests for examples/: each runs as a real process, driven by real peers.

Every example is started on a free port, polled until the port accepts
connections, driven with the ``websockets`` library's client (and the
example client against the example echo server), then stopped with SIGINT,
which must close everyone with 1001 and exit 0. The helpers are in ``_procs``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _procs import (
    EXAMPLES,
    STOP_TIMEOUT,
    TIMEOUT,
    assert_closed_by_server,
    free_port,
    http_get,
    run_example,
    wait_for,
    ws_connect,
)
from websockets.exceptions import InvalidStatus


def test_echo_server(tmp_path: Path) -> None:
    with run_example("echo_server.py", tmp_path) as server:
        with ws_connect(server.url) as ws:
            ws.send("Hello, wskit \N{CHECK MARK}")
            reply = ws.recv(timeout=TIMEOUT)
            assert reply == "Hello, wskit \N{CHECK MARK}" and isinstance(reply, str)

            ws.send(b"\x00\x01\xfe\xff")
            reply = ws.recv(timeout=TIMEOUT)
            assert reply == b"\x00\x01\xfe\xff" and isinstance(reply, bytes)

            big = "wskit " * 50_000  # 300 kB, compressed both ways
            ws.send(big)
            assert ws.recv(timeout=TIMEOUT) == big

            # Shutting down while a client is connected closes it with 1001.
            server.stop()
            assert_closed_by_server(ws, 1001)


def test_client_against_echo_server(tmp_path: Path) -> None:
    with run_example("echo_server.py", tmp_path) as server:
        result = run_client(server.url)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["Got message: Hello WebSocket"]
        server.stop()


def run_client(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "client.py"), url],
        capture_output=True, text=True, timeout=STOP_TIMEOUT, stdin=subprocess.DEVNULL,
    )


def test_client_connection_refused() -> None:
    url = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_client(url)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"{url}: ")
    assert "Traceback" not in result.stderr


def test_server_handler_counts_connections(tmp_path: Path) -> None:
    with run_example("server_handler.py", tmp_path) as server:
        with ws_connect(server.url) as first:
            first.send("hi")
            assert first.recv(timeout=TIMEOUT) == "1 connected: hi"

            with ws_connect(server.url) as second:
                second.send("yo")
                assert second.recv(timeout=TIMEOUT) == "2 connected: yo"
                first.send("again")
                assert first.recv(timeout=TIMEOUT) == "2 connected: again"

            # The server's on_close for `second` may run just after our close
            # returned: poll until the count comes down.
            def count_is_one() -> bool:
                first.send("count?")
                reply = first.recv(timeout=TIMEOUT)
                assert reply in ("1 connected: count?", "2 connected: count?")
                return reply == "1 connected: count?"

            wait_for(count_is_one, "the count to drop to 1")

            # Text only: a binary message is refused with 1003.
            first.send(b"\x01\x02")
            assert_closed_by_server(first, 1003)

        with ws_connect(server.url) as third:
            def alone() -> bool:
                third.send("alone?")
                return third.recv(timeout=TIMEOUT) == "1 connected: alone?"

            wait_for(alone, "a new connection to be counted alone")
            server.stop()
            assert_closed_by_server(third, 1001)

    log = server.output()
    assert "opened (1 connected)" in log
    assert "closed: " in log and "(0 connected)" in log


def test_chat_serves_page_and_routes(tmp_path: Path) -> None:
    with run_example("chat.py", tmp_path) as server:
        status, content_type, body = http_get(server.port, "/")
        assert status == 200
        assert content_type == "text/html; charset=utf-8"
        assert "<title>wskit chat</title>" in body
        for element in ('id="input"', 'id="send"', 'id="messages"', 'id="status"'):
            assert element in body
        assert '"/ws"' in body

        assert http_get(server.port, "/nope")[0] == 404
        assert http_get(server.port, "/ws")[0] == 426  # a WebSocket, not a page

        with pytest.raises(InvalidStatus) as rejected:
            ws_connect(f"{server.url}/elsewhere")
        assert rejected.value.response.status_code == 404
        # The example client says why it could not connect, with the status.
        result = run_client(f"{server.url}/elsewhere")
        assert result.returncode == 1 and result.stdout == ""
        assert "404" in result.stderr and "Traceback" not in result.stderr

        # Cross-site WebSocket hijacking: a foreign Origin is refused.
        with pytest.raises(InvalidStatus) as rejected:
            ws_connect(f"{server.url}/ws", origin="http://evil.example")
        assert rejected.value.response.status_code == 403
        with ws_connect(f"{server.url}/ws", origin=f"http://127.0.0.1:{server.port}") as ws:
            ws.send("same origin")
            assert ws.recv(timeout=TIMEOUT) == "same origin"
        server.stop()


def test_chat_broadcasts_to_everyone(tmp_path: Path) -> None:
    with run_example("chat.py", tmp_path) as server:
        url = f"{server.url}/ws"
        with ws_connect(url) as alice:
            # Each peer first hears its own line back: then the server has
            # certainly registered it, and no later broadcast can miss it.
            alice.send("alice joined")
            assert alice.recv(timeout=TIMEOUT) == "alice joined"
            with ws_connect(url) as bob:
                bob.send("bob joined")
                assert bob.recv(timeout=TIMEOUT) == "bob joined"
                assert alice.recv(timeout=TIMEOUT) == "bob joined"

                alice.send("hello everyone")
                for peer in (alice, bob):
                    reply = peer.recv(timeout=TIMEOUT)
                    assert reply == "hello everyone" and isinstance(reply, str)

                # Binary is refused with 1003, and only that peer goes.
                bob.send(b"\xff")
                assert_closed_by_server(bob, 1003)

            alice.send("still here")
            assert alice.recv(timeout=TIMEOUT) == "still here"
            server.stop()
            assert_closed_by_server(alice, 1001)
