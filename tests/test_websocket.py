"""``wskit.WebSocket`` and the blocking ``wskit.listen``, through real sockets."""

from __future__ import annotations

import threading

import pytest
import trio
import websockets.exceptions
import websockets.sync.client

import wskit


def echo(out):
    return out.send


async def test_listen_returns_the_bound_address(ws_connect):
    async with wskit.WebSocket(echo) as ws:
        host, port = await ws.listen("127.0.0.1:0")
        assert host == "127.0.0.1"
        assert isinstance(port, int) and 0 < port < 65536
        host2, port2 = await ws.listen(("127.0.0.1", 0))  # a tuple works too
        assert host2 == "127.0.0.1" and port2 not in (0, port)
        async with ws_connect(f"ws://{host}:{port}/") as client:
            await client.send("one")
            assert await client.recv() == "one"
        ws.shutdown()


async def test_listen_on_two_ports(ws_connect, log):
    class Named(wskit.Handler):
        def on_open(self, handshake):
            log("open", handshake.local_addr[1])

        def on_message(self, msg):
            self.out.send(f"{msg} via {self.out.connection_id}")

    async with wskit.WebSocket(Named) as ws:
        _, port_a = await ws.listen("127.0.0.1:0")
        _, port_b = await ws.listen("127.0.0.1:0")
        assert port_a != port_b
        async with ws_connect(f"ws://127.0.0.1:{port_a}/") as a, \
                ws_connect(f"ws://127.0.0.1:{port_b}/") as b:
            await a.send("a")
            await b.send("b")
            reply_a, reply_b = await a.recv(), await b.recv()
            assert reply_a.startswith("a via ") and reply_b.startswith("b via ")
            assert reply_a[6:] != reply_b[6:]
        ws.shutdown()
    assert sorted(port for (port,) in log.of("open")) == sorted([port_a, port_b])


async def test_listen_on_a_busy_port_raises_io():
    async with wskit.WebSocket(echo) as ws:
        _, port = await ws.listen("127.0.0.1:0")
        with pytest.raises(wskit.Error) as info:
            await ws.listen(f"127.0.0.1:{port}")
        assert info.value.kind is wskit.ErrorKind.IO
        ws.shutdown()


async def test_broadcaster_reaches_every_connection(ws_connect, log):
    class Opened(wskit.Handler):
        def on_open(self, handshake):
            log("open")

    async with wskit.WebSocket(Opened) as ws:
        _, port_a = await ws.listen("127.0.0.1:0")
        _, port_b = await ws.listen("127.0.0.1:0")
        async with ws_connect(f"ws://127.0.0.1:{port_a}/") as a, \
                ws_connect(f"ws://127.0.0.1:{port_a}/") as b, \
                ws_connect(f"ws://127.0.0.1:{port_b}/") as c:
            await log.wait("open", 3)
            everyone = ws.broadcaster()
            assert isinstance(everyone, wskit.Sender)
            everyone.send("to everyone")
            everyone.send(b"\x00binary")
            with trio.fail_after(5):
                for client in (a, b, c):
                    assert [await client.recv(), await client.recv()] == [
                        "to everyone", b"\x00binary"]
            await trio.to_thread.run_sync(everyone.send, "from a thread")
            with trio.fail_after(5):
                for client in (a, b, c):
                    assert await client.recv() == "from a thread"
        ws.shutdown()


async def test_shutdown_from_another_thread_is_thread_safe_and_idempotent(ws_connect, log):
    class H(wskit.Handler):
        def on_open(self, handshake):
            log("open")

        def on_shutdown(self):
            log("shutdown")

        def on_close(self, code, reason):
            log("close", code)

    closes = []
    with trio.fail_after(5):
        async with wskit.WebSocket(H) as ws:
            _, port = await ws.listen("127.0.0.1:0")
            async with ws_connect(f"ws://127.0.0.1:{port}/") as a, \
                    ws_connect(f"ws://127.0.0.1:{port}/") as b:
                await log.wait("open", 2)

                def stop_many_times():
                    threads = [threading.Thread(target=ws.shutdown) for _ in range(4)]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    ws.shutdown()

                await trio.to_thread.run_sync(stop_many_times)
                for client in (a, b):
                    with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                        await client.recv()
                    closes.append(client.close_code)
            # Leaving the block waits for the shutdown to finish.
        ws.shutdown()  # after the block: still harmless
        await trio.to_thread.run_sync(ws.shutdown)
    assert closes == [1001, 1001]
    assert log.of("shutdown") == [(), ()]
    assert log.of("close") == [(wskit.CloseCode.AWAY,), (wskit.CloseCode.AWAY,)]


async def test_block_waits_for_shutdown_while_listening(ws_connect):
    exited = trio.Event()

    async def run(task_status):
        async with wskit.WebSocket(echo) as ws:
            await ws.listen("127.0.0.1:0")
            task_status.started(ws)
        exited.set()

    async with trio.open_nursery() as nursery:
        ws = await nursery.start(run)
        with trio.move_on_after(0.2):
            await exited.wait()
        assert not exited.is_set()  # still serving: nobody called shutdown()
        ws.shutdown()
        with trio.fail_after(5):
            await exited.wait()


async def test_block_without_listeners_exits_when_connections_close(ws_server, log):
    async def server_handler(conn):
        await conn.send("bye")
        await conn.wait_closed()

    class Client(wskit.Handler):
        def on_message(self, msg):
            self.out.close()

        def on_close(self, code, reason):
            log("close", code)

    server = await ws_server(server_handler)
    with trio.fail_after(5):
        async with wskit.WebSocket(Client) as ws:
            await ws.connect(server.url())
    assert log.of("close") == [(wskit.CloseCode.NORMAL,)]


async def test_shutdown_before_entering_the_block():
    ws = wskit.WebSocket(echo)
    ws.shutdown()
    with trio.fail_after(5):
        async with ws:
            await ws.listen("127.0.0.1:0")


async def test_blocking_listen_stopped_by_sender_shutdown(raw, log):
    class Stopper(wskit.Handler):
        def on_message(self, msg):
            log("message", msg)
            if msg == "stop":
                self.out.shutdown()
            else:
                self.out.send(msg)

        def on_close(self, code, reason):
            log("close", code)

    port = raw.free_port()
    addr = f"127.0.0.1:{port}"
    outcome = []

    def serve_forever():
        try:
            outcome.append(("returned", wskit.listen(addr, Stopper)))
        except BaseException as exc:  # pragma: no cover - reported below
            outcome.append(("raised", exc))

    def client():
        # The blocking websockets client, in its own thread; retries until bound.
        for _ in range(200):
            try:
                conn = websockets.sync.client.connect(f"ws://{addr}/", proxy=None)
                break
            except OSError:
                threading.Event().wait(0.01)
        else:  # pragma: no cover
            raise AssertionError("wskit.listen never accepted a connection")
        with conn:
            conn.send("ping")
            assert conn.recv(timeout=5) == "ping"
            conn.send("stop")
            with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                conn.recv(timeout=5)
            return conn.close_code

    server_thread = threading.Thread(target=serve_forever)
    server_thread.start()
    with trio.fail_after(5):
        code = await trio.to_thread.run_sync(client, abandon_on_cancel=True)
        await trio.to_thread.run_sync(server_thread.join, abandon_on_cancel=True)
    assert code == 1001
    assert outcome == [("returned", None)]
    assert log.of("message") == [("ping",), ("stop",)]
    assert log.of("close") == [(wskit.CloseCode.AWAY,)]


async def test_shutdown_closes_client_connections_with_1001(ws_server, log):
    async def server_handler(conn):
        await conn.send("hi")
        with pytest.raises(websockets.exceptions.ConnectionClosedOK):
            await conn.recv()
        log("server saw", conn.close_code)

    class Client(wskit.Handler):
        def on_message(self, msg):
            log("message", msg)

        def on_shutdown(self):
            log("shutdown")

        def on_close(self, code, reason):
            log("close", code)

    server = await ws_server(server_handler)
    with trio.fail_after(5):
        async with wskit.WebSocket(Client) as ws:
            await ws.connect(server.url())
            await ws.connect(server.url())
            await log.wait("message", 2)
            ws.shutdown()
    assert log.of("shutdown") == [(), ()]
    assert log.of("close") == [(wskit.CloseCode.AWAY,)] * 2
    assert await log.wait("server saw", 2) == [(1001,)] * 2
