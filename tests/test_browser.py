"""The chat example in real headless Chromium, driven over the DevTools Protocol.

Chromium is launched with ``--remote-debugging-port=0``; the port it picked is
read from ``DevToolsActivePort`` in its profile directory, and CDP is spoken
over its own WebSocket with the ``websockets`` sync client (no Selenium or
Playwright). A ``websockets`` peer joins the same chat, so the test checks the
broadcast in both directions between a browser and a non-browser client.

Chromium is required: ``.ci/run`` installs it, and its absence fails the test.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import ClientConnection, connect

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CHROMIUM = "/usr/bin/chromium"
#: Bounds for the polls; generous for a loaded 2-core CI machine.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
TIMEOUT = 5.0

pytestmark = pytest.mark.browser


def wait_for(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll ``check`` until it returns something truthy, at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ws_connect(url: str) -> ClientConnection:
    # proxy=None: never route 127.0.0.1 through a proxy from the environment.
    return connect(url, proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT,
                   max_size=None)


@contextlib.contextmanager
def chat_server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """examples/chat.py on a free port, once that port accepts connections."""
    port = free_port()
    log = tmp_path / "chat.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "chat.py"), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chat.py exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"chat.py not listening after {START_TIMEOUT}s:\n"
                                f"{log.read_text()}")
                time.sleep(0.05)
        yield port, proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class DevTools:
    """A minimal Chrome DevTools Protocol client on one browser connection.

    Pages are reached through flattened sessions (``Target.attachToTarget``
    with ``flatten``): commands carry a ``sessionId``. Events are kept (the
    last few) only to explain a failure.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        command: dict[str, Any] = {"id": next(self.ids), "method": method,
                                   "params": params or {}}
        if session is not None:
            command["sessionId"] = session
        self.ws.send(json.dumps(command))
        deadline = time.monotonic() + TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no answer to CDP {method} within {TIMEOUT}s")
            reply = json.loads(self.ws.recv(timeout=remaining))
            if reply.get("id") == command["id"]:
                if "error" in reply:
                    pytest.fail(f"CDP {method} failed: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result
            self.events = [*self.events[-19:], reply]

    def evaluate(self, session: str, expression: str) -> Any:
        """Run JavaScript in the page; its value, by value."""
        result = self.call("Runtime.evaluate",
                           {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in result:
            pytest.fail(f"JavaScript {expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console(self) -> str:
        """Recent console output and exceptions of the page, for failure messages."""
        lines = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.consoleAPICalled":
                lines.append(" ".join(str(a.get("value", a.get("description")))
                                      for a in params.get("args", [])))
            elif event.get("method") == "Runtime.exceptionThrown":
                lines.append(str(params.get("exceptionDetails")))
        return "\n".join(lines)


def require_chromium() -> None:
    # A failure, not a skip: a CI run without the browser must not pass quietly.
    if not os.access(CHROMIUM, os.X_OK):
        found = shutil.which("chromium")
        pytest.fail(f"Chromium is required for the browser tests and is not installed at "
                    f"{CHROMIUM} (on PATH: {found}); install it with "
                    f"`apt-get install -y chromium` (.ci/run does)", pytrace=False)


@contextlib.contextmanager
def chromium(tmp_path: Path) -> Iterator[DevTools]:
    require_chromium()
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = tmp_path / "chromium.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: cleanup reaches every child
        )
    try:
        active_port = profile / "DevToolsActivePort"

        def devtools_address() -> str | None:
            if proc.poll() is not None:
                pytest.fail(f"chromium exited with {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(FileNotFoundError):
                lines = active_port.read_text().split()
                if len(lines) == 2:  # written in one go, but read it defensively
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            return None

        address = wait_for(devtools_address, "Chromium's DevToolsActivePort", START_TIMEOUT)
        with connect(address, proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT,
                     max_size=None, compression=None) as ws:
            devtools = DevTools(ws)
            try:
                yield devtools
            finally:
                with contextlib.suppress(Exception):
                    devtools.call("Browser.close")
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("chromium did not exit after Browser.close")
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # Helpers (zygote, renderers) left behind by a crash: same group, ours.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_chat_in_chromium(tmp_path: Path) -> None:
    require_chromium()
    with chat_server(tmp_path) as (port, server, server_log), chromium(tmp_path) as devtools:
        with ws_connect(f"ws://127.0.0.1:{port}/ws") as peer:
            # Hearing its own line back proves the server registered the peer.
            peer.send("python joined")
            assert peer.recv(timeout=TIMEOUT) == "python joined"

            target = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            page = devtools.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
            devtools.call("Runtime.enable", session=page)
            navigation = devtools.call("Page.navigate", {"url": f"http://127.0.0.1:{port}/"}, page)
            assert "errorText" not in navigation, navigation

            def status() -> Any:
                return devtools.evaluate(
                    page, "document.getElementById('status')?.textContent ?? null")

            def messages() -> list[str]:
                result: list[str] = devtools.evaluate(
                    page, "Array.from(document.querySelectorAll('#messages li'),"
                          " li => li.textContent)")
                return result

            wait_for(lambda: status() == "open",
                     f"the page's WebSocket to open\n{devtools.console()}")
            assert devtools.evaluate(page, "document.title") == "wskit chat"
            assert messages() == []  # "python joined" was before the page was there

            # Type into the input (real input events) and click Send.
            devtools.evaluate(page, "document.getElementById('input').focus()")
            devtools.call("Input.insertText", {"text": "hello from chromium"}, page)
            assert devtools.evaluate(page, "document.getElementById('input').value") == (
                "hello from chromium")
            devtools.evaluate(page, "document.getElementById('send').click()")

            # The browser hears its own line back, so the server has it
            # registered before the peer talks to it.
            wait_for(lambda: messages() == ["hello from chromium"],
                     f"the page to show its own message\n{devtools.console()}")
            assert devtools.evaluate(page, "document.getElementById('input').value") == ""
            assert peer.recv(timeout=TIMEOUT) == "hello from chromium"

            peer.send("hello from python")
            wait_for(lambda: messages() == ["hello from chromium", "hello from python"],
                     f"the page to show the peer's message\n{devtools.console()}")
            assert peer.recv(timeout=TIMEOUT) == "hello from python"

            # Graceful shutdown reaches the browser as 1001 too.
            server.send_signal(signal.SIGINT)
            with pytest.raises(ConnectionClosedOK):
                peer.recv(timeout=STOP_TIMEOUT)
            assert peer.close_code == 1001
            wait_for(lambda: status() == "closed (1001)", "the page to see the server go")
            assert server.wait(timeout=STOP_TIMEOUT) == 0, server_log.read_text()
