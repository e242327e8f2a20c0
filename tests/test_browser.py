"""The chat example in real headless Chromium, driven over the DevTools Protocol.

A ``websockets`` peer joins the same chat, so the test checks the broadcast
in both directions between a browser and a non-browser client. The Chromium
helpers (and why Chromium is required) are in ``_browser``; the process
helpers in ``_procs``.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from _browser import chromium, require_chromium
from _procs import STOP_TIMEOUT, TIMEOUT, run_example, wait_for, ws_connect
from websockets.exceptions import ConnectionClosedOK

pytestmark = pytest.mark.browser


def test_chat_in_chromium(tmp_path: Path) -> None:
    require_chromium()
    with run_example("chat.py", tmp_path) as server, chromium(tmp_path) as devtools:
        port = server.port
        with ws_connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as peer:
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
            server.proc.send_signal(signal.SIGINT)
            with pytest.raises(ConnectionClosedOK):
                peer.recv(timeout=STOP_TIMEOUT)
            assert peer.close_code == 1001
            wait_for(lambda: status() == "closed (1001)", "the page to see the server go")
            assert server.proc.wait(timeout=STOP_TIMEOUT) == 0, server.output()
