"""Smoke tests for examples/: each runs as a real process, driven by real peers.

Every example is started on a free port, polled until the port accepts
connections, driven with the ``websockets`` library's client (and the
example client against the example echo server), then stopped with SIGINT,
which must close everyone with 1001 and exit 0.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Bounds for the polls below; generous for a loaded 2-core CI machine,
#: a passing run takes a fraction of them.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
RECV_TIMEOUT = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], Any], what: str, timeout: float = RECV_TIMEOUT) -> Any:
    """Poll ``check`` until it returns something truthy, at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        time.sleep(0.05)


class Example:
    """A running example process, its port and its log."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"ws://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"example exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"port {self.port} not open after {START_TIMEOUT}s:\n"
                                f"{self.output()}")
                time.sleep(0.05)

    def stop(self) -> str:
        """SIGINT, and the example must exit 0 within STOP_TIMEOUT; returns its log."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"example still running {STOP_TIMEOUT}s after SIGINT:\n{self.output()}")
        output = self.output()
        assert code == 0, f"example exited with {code} after SIGINT:\n{output}"
        return output


@contextlib.contextmanager
def run_example(script: str, tmp_path: Path, *args: str) -> Iterator[Example]:
    port = free_port()
    log = tmp_path / f"{script}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), "--port", str(port), *args],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    example = Example(proc, port, log)
    try:
        example.wait_ready()
        yield example
    finally:
        if proc.poll() is None:  # the test failed before stop(): don't leak it
            proc.kill()
            proc.wait()


def ws_connect(url: str, **kwargs: Any) -> ClientConnection:
    # proxy=None: never route 127.0.0.1 through a proxy from the environment.
    ws: ClientConnection = connect(url, proxy=None, open_timeout=RECV_TIMEOUT,
                                   close_timeout=RECV_TIMEOUT, **kwargs)
    return ws


def assert_closed_by_server(ws: ClientConnection, code: int) -> None:
    """The server closed ``ws`` with ``code`` (waits for the close frame)."""
    expected = ConnectionClosedOK if code in (1000, 1001) else ConnectionClosedError
    with pytest.raises(expected):
        ws.recv(timeout=RECV_TIMEOUT)
    assert ws.close_code == code


def http_get(port: int, path: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=RECV_TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode()
        return response.status, response.getheader("Content-Type", ""), body
    finally:
        conn.close()


# ----------------------------------------------------------------------


def test_echo_server(tmp_path: Path) -> None:
    with run_example("echo_server.py", tmp_path) as server:
        with ws_connect(server.url) as ws:
            ws.send("Hello, wskit \N{CHECK MARK}")
            reply = ws.recv(timeout=RECV_TIMEOUT)
            assert reply == "Hello, wskit \N{CHECK MARK}" and isinstance(reply, str)

            ws.send(b"\x00\x01\xfe\xff")
            reply = ws.recv(timeout=RECV_TIMEOUT)
            assert reply == b"\x00\x01\xfe\xff" and isinstance(reply, bytes)

            big = "wskit " * 50_000  # 300 kB, compressed both ways
            ws.send(big)
            assert ws.recv(timeout=RECV_TIMEOUT) == big

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
            assert first.recv(timeout=RECV_TIMEOUT) == "1 connected: hi"

            with ws_connect(server.url) as second:
                second.send("yo")
                assert second.recv(timeout=RECV_TIMEOUT) == "2 connected: yo"
                first.send("again")
                assert first.recv(timeout=RECV_TIMEOUT) == "2 connected: again"

            # The server's on_close for `second` may run just after our close
            # returned: poll until the count comes down.
            def count_is_one() -> bool:
                first.send("count?")
                reply = first.recv(timeout=RECV_TIMEOUT)
                assert reply in ("1 connected: count?", "2 connected: count?")
                return reply == "1 connected: count?"

            wait_for(count_is_one, "the count to drop to 1")

            # Text only: a binary message is refused with 1003.
            first.send(b"\x01\x02")
            assert_closed_by_server(first, 1003)

        with ws_connect(server.url) as third:
            def alone() -> bool:
                third.send("alone?")
                return third.recv(timeout=RECV_TIMEOUT) == "1 connected: alone?"

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
            assert ws.recv(timeout=RECV_TIMEOUT) == "same origin"
        server.stop()


def test_chat_broadcasts_to_everyone(tmp_path: Path) -> None:
    with run_example("chat.py", tmp_path) as server:
        url = f"{server.url}/ws"
        with ws_connect(url) as alice:
            # Each peer first hears its own line back: then the server has
            # certainly registered it, and no later broadcast can miss it.
            alice.send("alice joined")
            assert alice.recv(timeout=RECV_TIMEOUT) == "alice joined"
            with ws_connect(url) as bob:
                bob.send("bob joined")
                assert bob.recv(timeout=RECV_TIMEOUT) == "bob joined"
                assert alice.recv(timeout=RECV_TIMEOUT) == "bob joined"

                alice.send("hello everyone")
                for peer in (alice, bob):
                    reply = peer.recv(timeout=RECV_TIMEOUT)
                    assert reply == "hello everyone" and isinstance(reply, str)

                # Binary is refused with 1003, and only that peer goes.
                bob.send(b"\xff")
                assert_closed_by_server(bob, 1003)

            alice.send("still here")
            assert alice.recv(timeout=RECV_TIMEOUT) == "still here"
            server.stop()
            assert_closed_by_server(alice, 1001)
