"""The rooms examples as real processes, driven by real peers: the
``websockets`` sync client, plain HTTP, and two pages of headless Chromium
chatting in one room.

Helpers come from ``_procs`` (processes, clients) and ``_browser``
(Chromium over the DevTools Protocol).
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from _browser import DevTools, chromium, require_chromium
from _procs import (
    STOP_TIMEOUT,
    TIMEOUT,
    assert_closed_by_server,
    http_get,
    run_example,
    wait_for,
    ws_connect,
)
from websockets.exceptions import ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection


def recv(ws: ClientConnection) -> Any:
    return ws.recv(timeout=TIMEOUT)


def test_shared_counter(tmp_path: Path) -> None:
    with run_example("shared_counter.py", tmp_path) as server:
        with ws_connect(f"{server.url}/ws/x") as a, ws_connect(f"{server.url}/ws/x") as b, \
                ws_connect(f"{server.url}/ws/y") as c:
            for client in (a, b, c):
                assert recv(client) == "new value: 0"  # told on join
            a.send("increment")
            assert recv(a) == recv(b) == "new value: 1"
            b.send("increment")
            assert recv(a) == recv(b) == "new value: 2"
            c.send("decrement")  # another room, another counter
            assert recv(c) == "new value: -1"
            a.send("double")
            assert recv(a) == "send 'increment' or 'decrement'"
            b.send("decrement")  # b's next line is this: "double" went to a only
            assert recv(a) == recv(b) == "new value: 1"
            with ws_connect(f"{server.url}/ws/x") as d:
                assert recv(d) == "new value: 1"
            assert http_get(server.port, "/status")[::2] == (200, "ok\n")
            summary = json.loads(http_get(server.port, "/rooms")[2])
            assert {room["room_id"] for room in summary["rooms"]} == {"x", "y"}
            server.stop()
            for client in (a, b, c):
                assert_closed_by_server(client, 1001)


def test_chat_room_over_websockets(tmp_path: Path) -> None:
    with run_example("chat_room.py", tmp_path) as server:
        status, content_type, body = http_get(server.port, "/")
        assert status == 200 and content_type == "text/html; charset=utf-8"
        assert "<title>wskit chat rooms</title>" in body and '"/ws/"' in body
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(f"{server.url}/ws/lobby", origin="http://evil.example")
        assert refused.value.response.status_code == 403

        url = f"{server.url}/ws/kitchen"
        with ws_connect(url, origin=f"http://127.0.0.1:{server.port}") as alice:
            welcome = recv(alice)
            assert welcome.startswith("Welcome to kitchen, user")
            assert welcome.endswith("Here: nobody else yet.")
            alice.send("/nick alice")
            assert recv(alice).endswith(" is now known as alice")
            alice.send("first!")
            assert recv(alice) == "alice: first!"
            with ws_connect(url) as bob:
                # Welcome, who is here, then the history.
                assert recv(bob).endswith("Here: alice.")
                assert recv(bob).endswith(" is now known as alice")
                assert recv(bob) == "alice: first!"
                joined = recv(alice)
                assert joined.startswith("user") and joined.endswith(" joined")
                bob_name = joined.removesuffix(" joined")
                bob.send("/nick alice")
                assert recv(bob) == "alice is taken"
                bob.send("/nick bob!")
                assert recv(bob) == "a name is 1-24 letters, digits, _ or -"
                bob.send("hi alice")
                assert recv(alice) == recv(bob) == f"{bob_name}: hi alice"
                bob.send(b"\x00")  # text only
                assert_closed_by_server(bob, 1003)
            assert recv(alice) == f"{bob_name} left"
            server.stop()
            assert_closed_by_server(alice, 1001)


def recv_until(ws: ClientConnection, expected: str) -> None:
    """Skip messages (the ticker's) until ``expected`` arrives."""
    deadline = time.monotonic() + TIMEOUT
    seen = []
    while (remaining := deadline - time.monotonic()) > 0:
        message = ws.recv(timeout=remaining)
        if message == expected:
            return
        seen.append(message)
    pytest.fail(f"no {expected!r} within {TIMEOUT}s; got {seen}")


def drain(ws: ClientConnection) -> None:
    """Read (ticks) until the connection closes; raises ConnectionClosed."""
    while True:
        recv(ws)


def test_background_push(tmp_path: Path) -> None:
    with run_example("background_push.py", tmp_path, "--tick", "0.2") as server:
        with ws_connect(server.url) as a, ws_connect(server.url) as b:
            ida = int(recv(a).split()[1])
            idb = int(recv(b).split()[1])
            assert ida != idb
            a.send("job 0.05 report")
            recv_until(a, "queued: report")
            recv_until(a, "done: report")  # pushed by the worker thread, by id
            b.send("job 0.3 lost")
            recv_until(b, "queued: lost")
        # b left before its result: the worker's send raised, and said so.
        wait_for(lambda: "not delivered" in server.output(), "the undelivered result")
        assert f"client {idb} is not connected" in server.output()
        with ws_connect(server.url) as c:
            recv(c)  # its id
            # Pushed to c by id from the background Trio task.
            tick = recv(c)
            assert re.fullmatch(r"tick \d+: \d+ connected", tick), tick
            c.send("nonsense")
            recv_until(c, "usage: job SECONDS TEXT")
            server.stop()
            with pytest.raises(ConnectionClosedOK):
                drain(c)
            assert c.close_code == 1001
    assert "stopped" in server.output()


# ----------------------------------------------------------------------
# Two browsers in one room


class Page:
    """One Chromium page (a target) of the chat room."""

    def __init__(self, devtools: DevTools, url: str) -> None:
        self.devtools = devtools
        target = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.target = target
        self.session = devtools.call("Target.attachToTarget",
                                     {"targetId": target, "flatten": True})["sessionId"]
        devtools.call("Runtime.enable", session=self.session)
        navigation = devtools.call("Page.navigate", {"url": url}, self.session)
        assert "errorText" not in navigation, navigation

    def eval(self, expression: str) -> Any:
        return self.devtools.evaluate(self.session, expression)

    def status(self) -> Any:
        return self.eval("document.getElementById('status')?.textContent ?? null")

    def messages(self) -> list[str]:
        result: list[str] = self.eval(
            "Array.from(document.querySelectorAll('#messages li'), li => li.textContent)")
        return result

    def type_and_send(self, text: str) -> None:
        self.eval("document.getElementById('input').focus()")
        self.devtools.call("Input.insertText", {"text": text}, self.session)
        self.eval("document.getElementById('send').click()")

    def wait_line(self, line: str) -> None:
        wait_for(lambda: line in self.messages(),
                 f"{line!r} on the page\n{self.devtools.console()}")

    def close(self) -> None:
        self.devtools.call("Target.closeTarget", {"targetId": self.target})


@pytest.mark.browser
def test_chat_room_in_two_chromium_pages(tmp_path: Path) -> None:
    require_chromium()
    with run_example("chat_room.py", tmp_path) as server, chromium(tmp_path) as devtools:
        url = f"http://127.0.0.1:{server.port}/#kitchen"
        first = Page(devtools, url)
        wait_for(lambda: first.status() == "open", f"page 1 to open\n{devtools.console()}")
        assert first.eval("document.getElementById('room').textContent") == "kitchen"
        welcome = wait_for(lambda: first.messages(), "page 1's welcome")[0]
        assert welcome.startswith("Welcome to kitchen, user")
        first_name = welcome.split(", ")[1].split("!")[0]

        second = Page(devtools, url)
        wait_for(lambda: second.status() == "open", f"page 2 to open\n{devtools.console()}")
        assert wait_for(lambda: second.messages(), "page 2's welcome")[0].endswith(
            f"Here: {first_name}.")
        joined = wait_for(lambda: [m for m in first.messages() if m.endswith(" joined")],
                          "page 1 to see page 2 join")[0]
        second_name = joined.removesuffix(" joined")

        first.type_and_send("/nick ada")
        second.wait_line(f"{first_name} is now known as ada")
        first.type_and_send("hello from page one")
        second.wait_line("ada: hello from page one")
        first.wait_line("ada: hello from page one")
        assert first.eval("document.getElementById('input').value") == ""

        second.type_and_send("hello from page two")
        first.wait_line(f"{second_name}: hello from page two")
        second.wait_line(f"{second_name}: hello from page two")

        second.close()
        first.wait_line(f"{second_name} left")

        server.proc.send_signal(signal.SIGINT)
        wait_for(lambda: first.status() == "closed (1001)", "page 1 to see the server go",
                 STOP_TIMEOUT)
        assert server.proc.wait(timeout=STOP_TIMEOUT) == 0, server.output()
