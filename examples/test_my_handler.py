"""How to test your own handler with wskit.testing — no sockets, no sleeps.

Run with pytest and pytest-trio (``trio_mode = true``, or mark each test
``@pytest.mark.trio``)::

    pytest examples/test_my_handler.py

The ``wskit_serve`` fixture comes with wskit (a ``pytest11`` plugin). The
``autojump_clock`` fixture comes with pytest-trio: time is virtual, so the
handler's 30-second idle timer fires at once while the test still sees
30 seconds pass on ``trio.current_time()``.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

import wskit
import wskit.testing


class Greeter(wskit.Handler):
    """The handler under test: greets, echoes in upper case, closes idle peers."""

    IDLE_S = 30.0

    def on_open(self, handshake: wskit.Handshake) -> None:
        name = handshake.request.query.get("name", ["stranger"])[0]
        self.out.send(f"hello {name}")
        self.idle = self.out.timeout(self.IDLE_S, "idle")

    def on_message(self, msg: wskit.Message) -> None:
        self.idle.cancel()
        self.idle = self.out.timeout(self.IDLE_S, "idle")
        self.out.send(msg.upper())  # a text message is a str (binary: bytes)

    def on_timeout(self, token: Any) -> None:
        self.out.close(wskit.CloseCode.AWAY, "idle too long")


async def test_greets_and_shouts_back() -> None:
    with trio.fail_after(5):
        async with wskit.testing.connect(Greeter, path="/?name=ada") as client:
            assert await client.receive() == "hello ada"
            await client.send("quiet please")
            assert await client.receive() == "QUIET PLEASE"
            await client.close()
    assert client.close_code == wskit.CloseCode.NORMAL


async def test_idle_peer_is_closed(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):  # virtual seconds under the autojump clock
        async with wskit.testing.connect(Greeter) as client:
            assert await client.receive() == "hello stranger"
            start = trio.current_time()
            await trio.sleep(20)               # virtual; activity resets the timer
            await client.send("still here")
            assert await client.receive() == "STILL HERE"
            code, reason = await client.wait_closed()
    assert (code, reason) == (wskit.CloseCode.AWAY, "idle too long")
    assert trio.current_time() - start == pytest.approx(20 + Greeter.IDLE_S)


async def test_two_clients_with_the_fixture(wskit_serve: Any) -> None:
    server = await wskit_serve(Greeter)
    with trio.fail_after(5):
        async with server.connect("/?name=a") as a, server.connect("/?name=b") as b:
            assert await a.receive() == "hello a"
            assert await b.receive() == "hello b"
            assert server.connections == 2
