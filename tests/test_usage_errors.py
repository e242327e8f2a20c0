"""A user's mistakes caught at start-up, each with advice on what to do instead."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import wskit


async def async_factory(out: wskit.Sender) -> Any:
    return lambda msg: out.send(msg)


class AsyncFactory(wskit.Factory):
    async def connection_made(self, out: wskit.Sender) -> Any:  # type: ignore[override]
        return lambda msg: None


class AsyncCallable:
    async def __call__(self, out: wskit.Sender) -> Any:
        return lambda msg: None


@pytest.mark.parametrize("factory", [async_factory, AsyncFactory(), AsyncCallable()])
def test_an_async_factory_is_refused_with_advice(factory: Any) -> None:
    with pytest.raises(wskit.Error) as info:
        wskit.WebSocket(factory)
    assert info.value.kind is wskit.ErrorKind.USAGE
    assert "plain 'def'" in str(info.value) and "hooks async" in str(info.value)


def test_a_handler_class_and_a_closure_are_still_factories() -> None:
    class Echo(wskit.Handler):
        async def on_message(self, msg: wskit.Message) -> None:
            self.out.send(msg)

    wskit.WebSocket(Echo)
    wskit.WebSocket(lambda out: lambda msg: None)


def test_listen_with_a_url_says_it_takes_host_port() -> None:
    with pytest.raises(wskit.Error) as info:
        wskit.listen("ws://127.0.0.1:9000", lambda out: lambda msg: None)
    assert info.value.kind is wskit.ErrorKind.USAGE
    assert "takes 'host:port'" in str(info.value) and "not a URL" in str(info.value)


@pytest.mark.parametrize("call", ["listen", "connect"])
async def test_the_blocking_helpers_inside_trio_point_to_websocket(call: str) -> None:
    target = "127.0.0.1:1" if call == "listen" else "ws://127.0.0.1:1/"
    with pytest.raises(wskit.Error) as info:
        getattr(wskit, call)(target, lambda out: lambda msg: None)
    assert info.value.kind is wskit.ErrorKind.USAGE
    assert "async with wskit.WebSocket(factory) as ws" in str(info.value)
    await trio.lowlevel.checkpoint()
