"""``wskit serve … --rooms`` and ``wskit dev … --rooms``, as a user runs them:
subprocesses, real sockets, every wait bounded, every process killed.

Helpers come from ``_cli_helpers`` and ``_procs``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _cli_helpers import one_error_line, run, run_server
from _procs import TIMEOUT, free_port, http_get, wait_for, ws_connect
from websockets.exceptions import ConnectionClosedOK, WebSocketException


def test_serve_a_room_service_with_rooms() -> None:
    with run_server("serve", "examples.shared_counter:SharedCounter", "--rooms",
                    "--grace", "0", "--slow-client", "drop",
                    "--max-client-queue", "64k") as server:
        # The banner lists the endpoints (issue 11, item 8).
        base = f"127.0.0.1:{server.port}"
        banner = [server.errors.until(lambda line: "rooms: " in line) for _ in range(3)]
        assert banner[0].endswith(f"rooms: ws://{base}/ws/{{room}} (WebSocket, one room per "
                                  "name); /ws joins 'default'")
        assert banner[1].endswith(f"rooms: http://{base}/status (health check: 'ok')")
        assert banner[2].endswith(f"rooms: http://{base}/rooms (JSON: every room's counters)")
        with ws_connect(f"{server.url}/ws/a") as first, \
                ws_connect(f"{server.url}/ws/a") as second, \
                ws_connect(f"{server.url}/ws") as other:
            for client in (first, second, other):
                assert client.recv(timeout=TIMEOUT) == "new value: 0"
            first.send("increment")
            assert first.recv(timeout=TIMEOUT) == "new value: 1"
            assert second.recv(timeout=TIMEOUT) == "new value: 1"
            other.send("increment")  # the default room has its own counter
            assert other.recv(timeout=TIMEOUT) == "new value: 1"
            assert http_get(server.port, "/status")[::2] == (200, "ok\n")
            status, _, body = http_get(server.port, "/rooms")
            summary = json.loads(body)
            assert status == 200
            assert {room["room_id"] for room in summary["rooms"]} == {"a", "default"}
            assert summary["slow_client"] == "drop"
            assert summary["max_client_queue"] == 64 * 1024
            assert summary["clients"] == 3
        assert server.stop() == 0


def test_serve_a_rooms_instance_without_the_flag() -> None:
    # A module-level wskit.Rooms is a factory like any other.
    with run_server("serve", "examples.chat_room:rooms") as server:
        status, _, body = http_get(server.port, "/")
        assert status == 200 and "<title>wskit chat rooms</title>" in body
        with ws_connect(f"{server.url}/ws/lobby") as client:
            assert client.recv(timeout=TIMEOUT).startswith("Welcome to lobby, user")
        assert server.stop() == 0


@pytest.mark.parametrize(("args", "message"), [
    (("serve", "examples.shared_counter:SharedCounter", "--grace", "1"),
     "--grace need --rooms"),
    (("serve", "examples.shared_counter:SharedCounter", "--slow-client", "drop",
      "--max-client-queue", "1k"), "--slow-client, --max-client-queue need --rooms"),
    (("serve", "examples.router:router", "--rooms"), "is a Router, not a room service"),
    # Issue 11, item 7: a Handler class was accepted, then raised TypeError
    # at the first join; it is refused at start-up, saying what to serve.
    (("serve", "examples.server_handler:Server", "--rooms"),
     "Server is a wskit.Handler (one per connection), not a room service"),
    (("serve", "examples.broadcast:relay", "--rooms"), "relay(out) cannot make room services"),
    (("dev", "examples.shared_counter:SharedCounter", "--grace", "1"),
     "--grace need --rooms"),
])
def test_rooms_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = run(*args, "--port", str(free_port()))
    assert result.returncode == 2, result.stderr
    assert message in one_error_line(result)


def test_dev_refuses_a_handler_with_rooms_at_start_up() -> None:
    result = run("dev", "examples.server_handler:Server", "--rooms", "--port", str(free_port()))
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wskit: error: Server is a wskit.Handler"), result.stderr
    assert "takes a wskit.RoomService subclass" in last


def test_rooms_option_values_are_checked() -> None:
    for bad in (("--grace", "-1"), ("--slow-client", "ignore"), ("--max-client-queue", "0")):
        result = run("serve", "examples.shared_counter:SharedCounter", "--rooms", *bad)
        assert result.returncode == 2, result.stderr
        assert bad[0] in result.stderr


_MODULE = """\
import wskit

VERSION = {version!r}


class Room(wskit.RoomService):
    def on_message(self, client, msg, ctx):
        ctx.send(wskit.Everyone, f"{{VERSION}} {{self.room_id}}: {{msg}}")
"""


def test_dev_serves_rooms_and_restarts_on_change(tmp_path: Path) -> None:
    module = tmp_path / "live_rooms.py"
    module.write_text(_MODULE.format(version="v1"))
    with run_server("dev", "live_rooms:Room", "--rooms", "--grace", "0", "--poll-interval",
                    "0.1", "--stop-timeout", "5", cwd=tmp_path) as server:
        with ws_connect(f"{server.url}/ws/kitchen") as old:
            old.send("hi")
            assert old.recv(timeout=TIMEOUT) == "v1 kitchen: hi"
            module.write_text(_MODULE.format(version="v2"))
            stat = module.stat()  # same size: make the change visible to any mtime
            os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
            with pytest.raises(ConnectionClosedOK):
                old.recv(timeout=TIMEOUT)
            assert old.close_code == 1001

        def new_version() -> bool:
            try:
                with ws_connect(f"{server.url}/ws/kitchen") as client:
                    client.send("hi")
                    return client.recv(timeout=TIMEOUT) == "v2 kitchen: hi"
            except (OSError, WebSocketException):  # between two servers
                return False  # between two servers

        wait_for(new_version, "the restarted server to answer v2")
        assert http_get(server.port, "/status")[::2] == (200, "ok\n")
        assert server.stop() == 0
