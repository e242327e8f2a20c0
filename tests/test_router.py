"""wskit.Router: dispatch by path to any kind of factory.

Matching is tested directly; dispatch in memory with wskit.testing and
through real sockets with the ``websockets`` library on the other end.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
import trio
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as sync_connect

import wskit
import wskit.testing

# ----------------------------------------------------------------------
# Matching


def factories(n: int) -> list[Any]:
    """``n`` distinct do-nothing factories."""
    return [lambda out: (lambda msg: None) for _ in range(n)]


def test_match_static_params_and_path_params() -> None:
    router = wskit.Router()
    echo, room, files = factories(3)
    router.add("/echo", echo)
    router.add("/rooms/{name}", room)
    router.add("/files/{rest:path}", files)

    assert router.match("/echo") == ("/echo", echo, {})
    assert router.match("/echo?x=1") == ("/echo", echo, {})
    found = router.match("/rooms/lobby%20one?token=2")
    assert found is not None
    assert found.pattern == "/rooms/{name}" and found.factory is room
    assert found.params == {"name": "lobby one"}
    assert router.match("/files/a/b/c.txt") == ("/files/{rest:path}", files, {"rest": "a/b/c.txt"})
    # One segment only; no partial or trailing-slash matches.
    assert router.match("/rooms/a/b") is None
    assert router.match("/rooms/") is None
    assert router.match("/echo/") is None
    assert router.match("/ech") is None
    assert router.match("//echo") is None  # a request target: no host part
    assert router.match("ws://host:80/echo?x") == ("/echo", echo, {})  # a client URL
    # An encoded slash stays inside its segment, then is decoded.
    assert router.match("/rooms/a%2Fb") == ("/rooms/{name}", room, {"name": "a/b"})
    assert router.patterns == ["/echo", "/rooms/{name}", "/files/{rest:path}"]


def test_first_matching_route_wins() -> None:
    special, generic = factories(2)
    router = wskit.Router([("/rooms/admin", special), ("/rooms/{name}", generic)])
    assert router.match("/rooms/admin").factory is special  # type: ignore[union-attr]
    assert router.match("/rooms/x").factory is generic  # type: ignore[union-attr]


@pytest.mark.parametrize("pattern", ["rooms", "/a/{}", "/a/{1x}", "/a/{n}/{n}", "/a/{n:int}",
                                     "/a/{n", "/a/n}"])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(wskit.Error) as raised:
        wskit.Router().add(pattern, lambda out: None)
    assert raised.value.kind is wskit.ErrorKind.USAGE
    assert repr(pattern) in str(raised.value)


def test_a_factory_must_be_callable() -> None:
    with pytest.raises(wskit.Error):
        wskit.Router({"/x": 42})  # type: ignore[dict-item]


def test_route_decorator_returns_the_factory() -> None:
    router = wskit.Router()

    @router.route("/h")
    class H(wskit.Handler):
        pass

    assert router.match("/h").factory is H  # type: ignore[union-attr]
    assert "/h" in repr(router)


# ----------------------------------------------------------------------
# Dispatch, in memory


class Tagged(wskit.Handler):
    """Answers every message with ``tag:params:message``."""

    tag = "tagged"

    def on_message(self, msg: wskit.Message) -> None:
        params = dict(wskit.Router.params(self.out))
        self.out.send(f"{self.tag}:{sorted(params.items())}:{msg}")


class Lifecycle(wskit.Factory):
    """A wskit.Factory that records its lifecycle hooks."""

    def __init__(self) -> None:
        self.made: list[Any] = []
        self.lost: list[Any] = []
        self.shutdowns = 0

    def connection_made(self, out: wskit.Sender) -> Any:
        handler = Tagged(out)
        handler.tag = "factory"
        self.made.append(handler)
        return handler

    def connection_lost(self, handler: Any) -> None:
        self.lost.append(handler)

    def on_shutdown(self) -> None:
        self.shutdowns += 1


async def test_dispatch_to_closure_handler_class_and_factory() -> None:
    lifecycle = Lifecycle()

    def closure(out: wskit.Sender) -> Any:
        return lambda msg: out.send(f"closure:{dict(wskit.Router.params(out))}:{msg}")

    router = wskit.Router({"/closure/{n}": closure, "/class": Tagged,
                           "/factory/{id}": lifecycle})
    router.add("/again", lifecycle)  # the same Factory under two routes
    with trio.fail_after(5):
        async with wskit.testing.serve(router) as server:
            async with server.connect("/closure/7?q=1") as client:
                await client.send("a")
                assert await client.receive() == "closure:{'n': '7'}:a"
            async with server.connect("/class") as client:
                await client.send("b")
                assert await client.receive() == "tagged:[]:b"
            async with server.connect("/factory/x%20y") as client:
                await client.send("c")
                assert await client.receive() == "factory:[('id', 'x y')]:c"
            async with server.connect("/again"):
                pass
    assert len(lifecycle.made) == 2
    assert lifecycle.lost == lifecycle.made  # the routed handlers themselves, not proxies
    assert lifecycle.shutdowns == 1  # once, though routed twice


async def test_unknown_path_is_404_before_the_upgrade() -> None:
    router = wskit.Router({"/here": Tagged})
    with trio.fail_after(5):
        async with wskit.testing.serve(router) as server:
            with pytest.raises(wskit.Error) as rejected:
                await server.connect("/elsewhere")
            assert rejected.value.status == 404
            page = await server.request("/elsewhere")
            assert (page.status, page.body) == (404, b"not found\n")
            assert (await server.request("/here")).status == 426  # a socket, not a page


async def test_default_factory_takes_unknown_paths() -> None:
    router = wskit.Router({"/a": Tagged}, default=lambda out: lambda msg: out.send("default"))
    with trio.fail_after(5):
        async with wskit.testing.connect(router, path="/anything/else") as client:
            await client.send("x")
            assert await client.receive() == "default"


async def test_routed_on_request_still_decides() -> None:
    class Guarded(wskit.Handler):
        def on_request(self, request: wskit.Request) -> wskit.Response | None:
            if wskit.Router.params(self.out)["room"] == "secret":
                return request.reject(403, "members only\n")
            if not request.is_websocket:
                return wskit.Response(200, f"room page for {request.path}\n")
            return request.accept(subprotocol="chat") if "chat" in request.subprotocols \
                else None

        def on_open(self, handshake: wskit.Handshake) -> None:
            self.out.send(f"joined {wskit.Router.params(self.out)['room']}")

    router = wskit.Router({"/rooms/{room}": Guarded})
    with trio.fail_after(5):
        async with wskit.testing.serve(router) as server:
            with pytest.raises(wskit.Error) as rejected:
                await server.connect("/rooms/secret")
            assert rejected.value.status == 403 and "members only" in str(rejected.value)
            page = await server.request("/rooms/lobby")
            assert page.body == b"room page for /rooms/lobby\n"
            async with server.connect("/rooms/lobby", subprotocols=["chat"]) as client:
                assert client.subprotocol == "chat"
                assert await client.receive() == "joined lobby"


async def test_async_hooks_and_timers_are_forwarded(
        autojump_clock: trio.testing.MockClock) -> None:
    closed: list[tuple[Any, str, Mapping[str, str]]] = []

    class Slow(wskit.Handler):
        async def on_message(self, msg: wskit.Message) -> None:
            await trio.sleep(1)
            self.out.timeout(5, str(msg))

        async def on_timeout(self, token: Any) -> None:
            self.out.send(f"later {token}")

        def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
            # Params are still there in on_close.
            closed.append((code, reason, dict(wskit.Router.params(self.out))))

    router = wskit.Router({"/slow/{k}": Slow})
    start = trio.current_time()
    with trio.fail_after(100):
        async with wskit.testing.connect(router, path="/slow/1") as client:
            await client.send("x")
            assert await client.receive() == "later x"
            assert trio.current_time() - start == pytest.approx(6)
    assert closed == [(1000, "", {"k": "1"})]


async def test_params_are_forgotten_after_connection_lost() -> None:
    outs: list[wskit.Sender] = []

    def factory(out: wskit.Sender) -> Any:
        outs.append(out)
        assert wskit.Router.params(out) == {"x": "1"}  # already inside the factory
        return lambda msg: None

    with trio.fail_after(5):
        async with wskit.testing.connect(wskit.Router({"/p/{x}": factory}), path="/p/1"):
            assert wskit.Router.params(outs[0]) == {"x": "1"}
    assert wskit.Router.params(outs[0]) == {}


async def test_nested_routers_merge_params() -> None:
    inner = wskit.Router({"/api/{version}/items/{item}": Tagged})
    outer = wskit.Router({"/api/{version}/{rest:path}": inner})
    with trio.fail_after(5):
        async with wskit.testing.connect(outer, path="/api/v2/items/9") as client:
            await client.send("m")
            params = [("item", "9"), ("rest", "items/9"), ("version", "v2")]
            assert await client.receive() == f"tagged:{params}:m"


async def test_a_failing_routed_handler_closes_only_its_connection() -> None:
    def broken(out: wskit.Sender) -> Any:
        def on_message(msg: wskit.Message) -> None:
            raise RuntimeError("routed bug")

        return on_message

    router = wskit.Router({"/broken": broken, "/ok": Tagged})
    with trio.fail_after(5):
        async with wskit.testing.serve(router) as server:
            async with server.connect("/ok") as ok, server.connect("/broken") as bad:
                await bad.send("x")
                assert (await bad.wait_closed())[0] == wskit.CloseCode.ERROR
                await ok.send("y")
                assert await ok.receive() == "tagged:[]:y"


async def test_factory_that_returns_garbage_gets_500() -> None:
    router = wskit.Router({"/bad": lambda out: 42})
    with trio.fail_after(5):
        async with wskit.testing.serve(router) as server:
            assert (await server.request("/bad")).status == 500


# ----------------------------------------------------------------------
# Through real sockets


async def test_router_with_websocket_and_a_real_client(serve: Any, ws_connect: Any) -> None:
    router = wskit.Router({"/echo": lambda out: out.send, "/rooms/{name}": Tagged})
    server = await serve(router)
    with trio.fail_after(5):
        async with ws_connect(server.url("/echo")) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
        async with ws_connect(server.url("/rooms/blue")) as ws:
            await ws.send("hi")
            assert await ws.recv() == "tagged:[('name', 'blue')]:hi"
        with pytest.raises(InvalidStatus) as rejected:
            async with ws_connect(server.url("/nowhere")):
                pass
        assert rejected.value.response.status_code == 404


async def test_client_connections_are_routed_by_url(ws_server: Any) -> None:
    async def echo(conn: Any) -> None:
        async for message in conn:
            await conn.send(f"{conn.request.path}|{message}")

    peer = await ws_server(echo)
    got: list[str] = []
    done = trio.Event()

    class Feed(wskit.Handler):
        def on_open(self, handshake: wskit.Handshake) -> None:
            self.out.send(f"feed {wskit.Router.params(self.out)['topic']}")

        def on_message(self, msg: wskit.Message) -> None:
            got.append(str(msg))
            self.out.close()

        def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
            if len(got) == 2:
                done.set()

    router = wskit.Router({"/feeds/{topic}": Feed, "/plain": Feed})
    with trio.fail_after(5):
        async with wskit.WebSocket(router, wskit.Settings(shutdown_on_interrupt=False)) as ws:
            await ws.connect(peer.url("/feeds/news"))
            await ws.connect(peer.url("/feeds/sport"))
            await done.wait()
            with pytest.raises(wskit.Error) as refused:
                await ws.connect(peer.url("/unrouted"))
            assert "no route for '/unrouted'" in str(refused.value)
    assert sorted(got) == ["/feeds/news|feed news", "/feeds/sport|feed sport"]


def test_router_with_blocking_listen_in_a_thread() -> None:
    class Stop(wskit.Handler):
        def on_message(self, msg: wskit.Message) -> None:
            self.out.send(f"stopping {wskit.Router.params(self.out)['who']}")
            self.out.shutdown()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    router = wskit.Router({"/stop/{who}": Stop})
    settings = wskit.Settings(shutdown_on_interrupt=False)
    thread = threading.Thread(target=wskit.listen, args=(("127.0.0.1", port), router),
                              kwargs={"settings": settings})
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while True:  # bounded: until the port accepts
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server never listened"
                time.sleep(0.02)
        with sync_connect(f"ws://127.0.0.1:{port}/stop/me", proxy=None,
                          open_timeout=5) as client:
            client.send("now")
            assert client.recv(timeout=5) == "stopping me"
    finally:
        thread.join(10)
    assert not thread.is_alive()  # listen() returned after out.shutdown()
