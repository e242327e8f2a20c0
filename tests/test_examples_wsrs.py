"""The ws-rs examples, in Python: each runs as a real process against a real peer.

Servers are started on a free port and polled until they accept; the peer
is the ``websockets`` library (sync client), a raw socket where a
well-behaved library won't misbehave, or another example. Servers are
stopped with SIGINT and must exit 0. Every wait is bounded; every process
is killed if its test fails first. The helpers are in ``_procs``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from _procs import (
    EXAMPLES,
    TIMEOUT,
    Example,
    assert_closed_by_server,
    free_port,
    http_get,
    run_example,
    wait_for,
    ws_connect,
)
from websockets.exceptions import InvalidStatus
from websockets.sync.server import ServerConnection, serve

#: Every example ws-rs ships, by its Python name here.
WSRS_EXAMPLES = [
    "autobahn_client", "autobahn_server", "bench", "broadcast", "channel", "chat", "cli",
    "cli_chat", "client", "echo_server", "external_shutdown", "html_chat", "peer2peer",
    "pong", "router", "server", "server_handler", "shared", "ssl_server", "threaded",
    "unsafe_ssl_client",
]


def run_script(script: str, *args: str, timeout: float = 15.0,
               stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(cert chain, key, CA) for 127.0.0.1, from a throwaway trustme CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    chain, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    chain.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return chain, key, ca_file


# ----------------------------------------------------------------------
# The list itself


def test_every_wsrs_example_exists_with_its_policy() -> None:
    for name in WSRS_EXAMPLES:
        source = (EXAMPLES / f"{name}.py").read_text()
        docstring = re.match(r'"""(.+?)"""', source, re.S)
        assert docstring, f"{name}.py must open with a docstring"
        assert "Policy choices" in docstring.group(1), f"{name}.py: say its policy choices"


# ----------------------------------------------------------------------
# Autobahn pair


def test_autobahn_server_echoes_large_and_fragmented(tmp_path: Path) -> None:
    with run_example("autobahn_server.py", tmp_path) as server:
        with ws_connect(server.url, max_size=None) as ws:
            big = os.urandom(3 * 2**20)  # over wskit's 1 MiB default: the limit was raised
            ws.send(big)
            assert ws.recv(timeout=TIMEOUT) == big
            ws.send(["frag", "mented ", "text"])  # one message in three frames
            assert ws.recv(timeout=TIMEOUT) == "fragmented text"
            server.stop()
            assert_closed_by_server(ws, 1001)


@contextlib.contextmanager
def fuzzing_server(cases: int) -> Iterator[tuple[str, list[str], list[str]]]:
    """A stand-in for Autobahn's fuzzingserver: (base URL, paths seen, problems)."""
    seen: list[str] = []
    problems: list[str] = []

    def handler(conn: ServerConnection) -> None:
        assert conn.request is not None
        path = conn.request.path
        seen.append(path)
        if path == "/getCaseCount":
            conn.send(str(cases))
        elif path.startswith("/runCase?"):
            case = re.search(r"case=(\d+)", path)
            for message in (f"case {case.group(1) if case else '?'}", b"\x00\x01binary"):
                conn.send(message)
                echoed = conn.recv(timeout=TIMEOUT)
                if echoed != message:
                    problems.append(f"{path}: sent {message!r}, got {echoed!r}")
        conn.close()

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}", seen, problems
        finally:
            server.shutdown()
            thread.join(TIMEOUT)


def test_autobahn_client_runs_every_case_then_updates_reports() -> None:
    with fuzzing_server(cases=3) as (url, seen, problems):
        result = run_script("autobahn_client.py", url, "--agent", "wskit test")
    assert result.returncode == 0, result.stderr
    assert seen == ["/getCaseCount",
                    "/runCase?case=1&agent=wskit%20test",
                    "/runCase?case=2&agent=wskit%20test",
                    "/runCase?case=3&agent=wskit%20test",
                    "/updateReports?agent=wskit%20test"]
    assert problems == []
    assert result.stdout.splitlines() == [
        "3 cases", "case 1/3", "case 2/3", "case 3/3", "reports updated for agent wskit test"]


def test_autobahn_client_with_a_given_case_count() -> None:
    with fuzzing_server(cases=99) as (url, seen, problems):
        result = run_script("autobahn_client.py", url, "--cases", "2")
    assert result.returncode == 0, result.stderr
    assert seen == ["/runCase?case=1&agent=wskit", "/runCase?case=2&agent=wskit",
                    "/updateReports?agent=wskit"]
    assert problems == []


def test_autobahn_client_without_a_server() -> None:
    result = run_script("autobahn_client.py", f"ws://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.startswith("cannot get the case count from ")


# ----------------------------------------------------------------------
# Servers


def test_broadcast_reaches_everyone(tmp_path: Path) -> None:
    with run_example("broadcast.py", tmp_path) as server:
        with ws_connect(server.url) as alice:
            # Each hears its own first message: then the server has it registered.
            alice.send("alice here")
            assert alice.recv(timeout=TIMEOUT) == "alice here"
            with ws_connect(server.url) as bob:
                bob.send("bob here")
                assert bob.recv(timeout=TIMEOUT) == "bob here"
                assert alice.recv(timeout=TIMEOUT) == "bob here"
                bob.send(b"\x01\x02")
                for peer in (alice, bob):
                    assert peer.recv(timeout=TIMEOUT) == b"\x01\x02"
                server.stop()
                assert_closed_by_server(alice, 1001)
                assert_closed_by_server(bob, 1001)


def test_channel_answers_from_the_worker_thread_in_order(tmp_path: Path) -> None:
    with run_example("channel.py", tmp_path) as server:
        with ws_connect(server.url) as first, ws_connect(server.url) as second:
            for text in ("hello world", "a b c", "x"):
                first.send(text)
            second.send("from two")
            assert first.recv(timeout=TIMEOUT) == "[worker] 2 words, reversed: dlrow olleh"
            assert first.recv(timeout=TIMEOUT) == "[worker] 3 words, reversed: c b a"
            assert first.recv(timeout=TIMEOUT) == "[worker] 1 words, reversed: x"
            assert second.recv(timeout=TIMEOUT) == "[worker] 2 words, reversed: owt morf"
        assert "worker stopped" in server.stop()


def test_html_chat_page_and_socket_on_one_path(tmp_path: Path) -> None:
    with run_example("html_chat.py", tmp_path) as server:
        status, _, page = http_get(server.port, "/")
        assert status == 200 and "new WebSocket(" in page and "wskit html chat" in page
        assert http_get(server.port, "/other")[0] == 404
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(server.url + "/", origin="http://evil.example")
        assert refused.value.response.status_code == 403
        origin = f"http://127.0.0.1:{server.port}"
        with ws_connect(server.url + "/", origin=origin) as a:
            a.send("hi from a")
            assert a.recv(timeout=TIMEOUT) == "hi from a"
            with ws_connect(server.url) as b:  # a script: no Origin at all
                b.send("hi from b")
                assert b.recv(timeout=TIMEOUT) == "hi from b"
                assert a.recv(timeout=TIMEOUT) == "hi from b"
                b.send(b"binary")
                assert_closed_by_server(b, 1003)
        server.stop()


def test_router_dispatches_by_path(tmp_path: Path) -> None:
    with run_example("router.py", tmp_path) as server:
        status, _, index = http_get(server.port, "/")
        assert status == 200 and "/rooms/{name}" in index and "/count" in index
        with ws_connect(f"{server.url}/echo") as echo:
            echo.send("ping")
            assert echo.recv(timeout=TIMEOUT) == "ping"
        tea = f"{server.url}/rooms/tea%20time"
        with ws_connect(tea) as a, ws_connect(tea) as b, \
                ws_connect(f"{server.url}/rooms/other") as other:
            assert a.recv(timeout=TIMEOUT) == "joined tea time (1 here)"
            assert b.recv(timeout=TIMEOUT) == "joined tea time (2 here)"
            assert other.recv(timeout=TIMEOUT) == "joined other (1 here)"
            a.send("cake?")
            for member in (a, b):
                assert member.recv(timeout=TIMEOUT) == "tea time| cake?"
            other.send("alone")
            assert other.recv(timeout=TIMEOUT) == "other| alone"
            b.send("yes")
            assert a.recv(timeout=TIMEOUT) == "tea time| yes"
        with ws_connect(f"{server.url}/count") as one:
            assert one.recv(timeout=TIMEOUT) == "1 connected"
            with ws_connect(f"{server.url}/count") as two:
                assert two.recv(timeout=TIMEOUT) == "2 connected"
        for path in ("/nope", "/rooms/" + "x" * 40):
            with pytest.raises(InvalidStatus) as missing:
                ws_connect(server.url + path)
            assert missing.value.response.status_code == 404
        server.stop()


def test_server_stops_after_its_first_connection(tmp_path: Path) -> None:
    with run_example("server.py", tmp_path) as server:
        with ws_connect(server.url) as ws:
            ws.send("hello")
            assert ws.recv(timeout=TIMEOUT) == "hello"
        assert server.wait_exit() == 0  # on its own, no signal
        output = server.output()
        assert "Server got message 'hello'." in output
        assert "WebSocket closing for (1000)" in output
        assert "Shutting down server after first connection closes." in output


def test_shared_state_across_handlers(tmp_path: Path) -> None:
    with run_example("shared.py", tmp_path, "--history", "2") as server:
        with ws_connect(server.url) as a:
            assert a.recv(timeout=TIMEOUT) == "welcome: 1 connected, 0 messages so far"
            a.send("one")
            assert a.recv(timeout=TIMEOUT) == "#1 one"
            with ws_connect(server.url) as b:
                assert b.recv(timeout=TIMEOUT) == "history #1 one"
                assert b.recv(timeout=TIMEOUT) == "welcome: 2 connected, 1 messages so far"
                b.send("two")
                assert b.recv(timeout=TIMEOUT) == "#2 two"
                a.send("three")
                assert a.recv(timeout=TIMEOUT) == "#3 three"
            with ws_connect(server.url) as c:  # the history keeps the last 2
                assert c.recv(timeout=TIMEOUT) == "history #2 two"
                assert c.recv(timeout=TIMEOUT) == "history #3 three"
        server.stop()


# ----------------------------------------------------------------------
# pong: timers, round trips, and a peer that never answers


def raw_open(port: int) -> socket.socket:
    """A hand-made WebSocket client that will never answer a ping."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                 b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                              .digest())
    assert head.startswith(b"HTTP/1.1 101") and accept in head
    return sock


def raw_frame(sock: socket.socket) -> tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "stream ended inside a frame"
            data += chunk
        return data

    first, second = exactly(2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", exactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", exactly(8))[0]
    return first & 0x0F, exactly(size)


def test_pong_measures_round_trips_and_drops_silent_peers(tmp_path: Path) -> None:
    with run_example("pong.py", tmp_path, "--interval", "0.1", "--expire", "1") as server:
        with ws_connect(server.url) as ws:  # websockets answers every ping
            wait_for(lambda: server.output().count("round trip") >= 3, "three round trips")
            ws.send("rtt?")
            assert re.fullmatch(r"rtt \d+\.\d{3} ms", ws.recv(timeout=TIMEOUT))
            ws.send("echo me")
            assert ws.recv(timeout=TIMEOUT) == "echo me"

            silent = raw_open(server.port)
            with silent:
                started = time.monotonic()
                opcodes = []
                while True:
                    opcode, payload = raw_frame(silent)
                    opcodes.append(opcode)
                    if opcode == 0x8:
                        break
                assert 0x9 in opcodes  # it was pinged...
                code, reason = struct.unpack("!H", payload[:2])[0], payload[2:].decode()
                assert (code, reason) == (1001, "missed pong")  # ...and dropped
                assert time.monotonic() - started < 4
            # The answering client was never affected.
            ws.send("still here")
            assert ws.recv(timeout=TIMEOUT) == "still here"
            server.stop()
            assert_closed_by_server(ws, 1001)


# ----------------------------------------------------------------------
# TLS


def test_ssl_server_and_unsafe_client(tmp_path: Path) -> None:
    chain, key, ca_file = tls_files(tmp_path)
    with run_example("ssl_server.py", tmp_path, "--cert", str(chain), "--key", str(key)) \
            as server:
        wss = f"wss://127.0.0.1:{server.port}"
        trusting = ssl.create_default_context(cafile=str(ca_file))
        with ws_connect(wss, ssl=trusting) as ws:
            ws.send("over tls")
            assert ws.recv(timeout=TIMEOUT) == "over tls"
        # A client that verifies, without the CA: refused.
        with pytest.raises(ssl.SSLCertVerificationError):
            ws_connect(wss)

        result = run_script("unsafe_ssl_client.py", wss, "--message", "trust me")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "Got message: trust me\n"
        assert "WARNING: TLS certificate verification is OFF" in result.stderr
        server.stop()


def test_ssl_server_bad_files_and_unsafe_client_refuses_ws() -> None:
    result = run_script("ssl_server.py", "--cert", "missing.pem", "--key", "missing.pem",
                        "--port", str(free_port()))
    assert result.returncode == 2 and "cannot load missing.pem" in result.stderr
    result = run_script("unsafe_ssl_client.py", "ws://127.0.0.1:1")
    assert result.returncode == 2 and "not a wss:// URL" in result.stderr


# ----------------------------------------------------------------------
# Threads and stdin


def test_threaded_runs_client_and_server_in_one_process() -> None:
    result = run_script("threaded.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["server got: Hello WebSocket", "client got: Hello WebSocket"]
    assert sorted(lines[2:]) == ["client closed: 1000", "server closed: 1000"]


def test_external_shutdown_from_the_main_thread(tmp_path: Path) -> None:
    with run_example("external_shutdown.py", tmp_path, stdin=subprocess.PIPE) as server:
        with ws_connect(server.url) as ws:
            ws.send("hi")
            assert ws.recv(timeout=TIMEOUT) == "hi"
            server.write("not yet")
            ws.send("still up")
            assert ws.recv(timeout=TIMEOUT) == "still up"
            server.write("stop")
            assert_closed_by_server(ws, 1001)
        assert server.wait_exit() == 0
        output = server.output()
        assert "shutting down from the main thread" in output and "server stopped" in output


def test_external_shutdown_on_ctrl_c(tmp_path: Path) -> None:
    with run_example("external_shutdown.py", tmp_path, stdin=subprocess.PIPE) as server:
        with ws_connect(server.url) as ws:
            server.stop()
            assert_closed_by_server(ws, 1001)


def test_cli_client_interactive_against_echo(tmp_path: Path) -> None:
    with run_example("echo_server.py", tmp_path) as echo, \
            run_example("cli.py", tmp_path, echo.url, server=False,
                        stdin=subprocess.PIPE) as cli:
        for line in ("first line", "second line"):
            cli.write(line)
            cli.wait_output(line)  # each answer before the next line
        cli.stdin.close()  # end of input: close normally
        assert cli.wait_exit() == 0
        assert cli.output().splitlines() == ["first line", "second line",
                                             "closed: 1000 end of input"]
        echo.stop()


def test_cli_chat_server_and_two_clients(tmp_path: Path) -> None:
    with run_example("cli_chat.py", tmp_path) as server:
        def client(name: str) -> contextlib.AbstractContextManager[Example]:
            return run_example("cli_chat.py", tmp_path, "--connect", server.url, "--name",
                               name, server=False, stdin=subprocess.PIPE)

        with client("ada") as ada:
            ada.wait_output("* welcome ada; 1 here")
            with client("bob") as bob:
                bob.wait_output("* welcome bob; 2 here")
                ada.wait_output("* bob joined")
                bob.write("hello ada")
                ada.wait_output("bob: hello ada")
                ada.write("hi bob")
                bob.wait_output("ada: hi bob")
                bob.stdin.close()
                assert bob.wait_exit() == 0
            ada.wait_output("* bob left")
            assert "ada: hi bob" not in ada.output()  # nobody hears themselves
            ada.stdin.close()
            assert ada.wait_exit() == 0
        server.stop()


def test_peer2peer_listens_and_connects(tmp_path: Path) -> None:
    with run_example("peer2peer.py", tmp_path, "--name", "alice",
                     stdin=subprocess.PIPE) as alice, \
            run_example("peer2peer.py", tmp_path, "--name", "bob", alice.url,
                        stdin=subprocess.PIPE) as bob:
        alice.wait_output("alice got: hello from bob")
        bob.wait_output("bob got: hello from alice")
        bob.write("hi everyone")
        alice.wait_output("alice got: bob: hi everyone")
        alice.write("hi bob")
        bob.wait_output("bob got: alice: hi bob")
        # A third party connecting to bob's listener meets him too.
        with ws_connect(bob.url) as carol:
            assert carol.recv(timeout=TIMEOUT) == "hello from bob"
            bob.write("welcome carol")
            assert carol.recv(timeout=TIMEOUT) == "bob: welcome carol"
            alice.wait_output("alice got: bob: welcome carol")
            bob.stop()
            assert_closed_by_server(carol, 1001)
        alice.wait_output("alice: connection")  # bob's connection closed on alice's side
        alice.stop()


def test_peer2peer_reports_an_unreachable_peer(tmp_path: Path) -> None:
    dead = f"ws://127.0.0.1:{free_port()}"
    with run_example("peer2peer.py", tmp_path, "--name", "solo", dead) as solo:
        solo.wait_output(f"solo: cannot reach {dead}")
        solo.stop()


# ----------------------------------------------------------------------
# bench


def test_bench_against_the_echo_server(tmp_path: Path) -> None:
    with run_example("echo_server.py", tmp_path) as echo:
        result = run_script("bench.py", echo.url, "--connections", "20", "--messages", "25",
                            "--size", "100")
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(
            r"20 connections x 25 round trips of 100 bytes: 500 in \d+\.\d\d s = [\d,]+/s; "
            r"latency p50 \d+\.\d\d ms, p99 \d+\.\d\d ms, max \d+\.\d\d ms\n", result.stdout)
        echo.stop()


def test_bench_counts_failures() -> None:
    result = run_script("bench.py", f"ws://127.0.0.1:{free_port()}", "--connections", "3")
    assert result.returncode == 1
    assert "3 connections failed" in result.stderr
