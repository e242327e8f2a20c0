"""Many connections at once through real sockets (bounded: marked slow)."""

from __future__ import annotations

import resource
from typing import Any

import pytest
import trio

import wskit


@pytest.fixture
def many_files() -> Any:
    """Raise the open-file limit for the test: 1,000 connections are 2,000 fds here."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if wanted < 2500:
        pytest.fail(f"the hard open-file limit ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.slow
async def test_1000_concurrent_connections_echo(serve: Any, ws_connect: Any,
                                                many_files: Any) -> None:
    count = 1000
    server = await serve(lambda out: out.send,
                         wskit.Settings(ping_interval=None, compression=None))
    all_open = trio.Event()
    opened = 0
    echoed = 0

    async def client(i: int) -> None:
        nonlocal opened, echoed
        async with ws_connect(server.url(), compression=None, ping_interval=None,
                              open_timeout=60) as conn:
            opened += 1
            if opened == count:
                all_open.set()
            await all_open.wait()  # every connection is open at the same time
            for j in range(3):
                await conn.send(f"{i}:{j}")
                assert await conn.recv() == f"{i}:{j}"
            echoed += 1

    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(client, i)
            await all_open.wait()
            assert server.ws.connections == count
    assert echoed == count


@pytest.mark.slow
async def test_1000_slowloris_peers_do_not_stop_a_normal_client(
    serve: Any, ws_connect: Any, many_files: Any
) -> None:
    server = await serve(lambda out: out.send,
                         wskit.Settings(ping_interval=None, handshake_timeout=30))
    streams = []
    try:
        for _ in range(1000):
            stream = await trio.open_tcp_stream(server.host, server.port)
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Trickle: a")
            streams.append(stream)
        with trio.fail_after(5):
            async with ws_connect(server.url()) as client:
                await client.send("not blocked")
                assert await client.recv() == "not blocked"
                assert server.ws.slots_in_use == 1  # trickling peers hold no admission slot
    finally:
        for stream in streams:
            await stream.aclose()
