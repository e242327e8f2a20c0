"""Headless Chromium driven over the DevTools Protocol, for the browser tests.

Chromium is launched with ``--remote-debugging-port=0``; the port it picked is
read from ``DevToolsActivePort`` in its profile directory, and CDP is spoken
over its own WebSocket with the ``websockets`` sync client (no Selenium or
Playwright).

Chromium is required: ``.ci/run`` installs it, and its absence fails the
test (``require_chromium``), it does not skip it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _procs import START_TIMEOUT, STOP_TIMEOUT, TIMEOUT, wait_for, ws_connect
from websockets.sync.client import ClientConnection

CHROMIUM = "/usr/bin/chromium"


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
    """Fail (not skip) when Chromium is missing: a CI run without it must not pass quietly."""
    if not os.access(CHROMIUM, os.X_OK):
        found = shutil.which("chromium")
        pytest.fail(f"Chromium is required for the browser tests and is not installed at "
                    f"{CHROMIUM} (on PATH: {found}); install it with "
                    f"`apt-get install -y chromium` (.ci/run does)", pytrace=False)


@contextlib.contextmanager
def chromium(tmp_path: Path) -> Iterator[DevTools]:
    """A headless Chromium (profile and log in ``tmp_path``), connected over CDP.

    Closed with ``Browser.close`` when the block is left; its whole process
    group is killed if it is still there.
    """
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
        with ws_connect(address, max_size=None, compression=None) as ws:
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
