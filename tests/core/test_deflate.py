"""BoundedDeflate: permessage-deflate that cannot be zip-bombed (``_core/deflate.py``)."""

from __future__ import annotations

import tracemalloc
import zlib

from wskit import CloseCode, Request
from wskit._core.deflate import BoundedDeflate
from wskit._core.handshake import ClientHandshake, ServerHandshake, make_extensions
from wskit._core.protocol import ConnectionCore, Failed

from ._wire import frame, pair


def negotiated(limit: int | None, **kwargs: object) -> tuple[ConnectionCore, ConnectionCore, str]:
    """A client and server core after a real extension negotiation."""
    client_exts = make_extensions("deflate", client=True, max_message_size=limit, **kwargs)
    server_exts = make_extensions("deflate", client=False, max_message_size=limit, **kwargs)
    client_hs = ClientHandshake(Request.for_url("ws://h/"), host="h", extensions=client_exts,
                                max_header_size=16384)
    request = ServerHandshake(max_header_size=16384).receive_data(client_hs.initiate())
    assert request is not None
    head, enabled = ServerHandshake.accept(request, request.accept(), server_exts)
    assert client_hs.receive_data(head) is not None
    agreed = head.decode().split("Sec-WebSocket-Extensions: ")[1].split("\r\n")[0]
    client = ConnectionCore(client=True, extensions=client_hs.enabled_extensions,
                            max_message_size=limit)
    server = ConnectionCore(client=False, extensions=enabled, max_message_size=limit)
    return client, server, agreed


def test_round_trip_after_negotiation() -> None:
    client, server, agreed = negotiated(2**20, window_bits=12)
    assert agreed.startswith("permessage-deflate")
    assert "server_max_window_bits=12" in agreed
    assert "client_max_window_bits=12" in agreed
    for text in ["a" * 5000, "b" * 5000, "héllo"]:
        client.send(text)
        assert server.receive_data(client.take_output()) == [text]
        server.send(text.encode())
        assert client.receive_data(server.take_output()) == [text.encode()]


def test_no_context_takeover_is_negotiated_and_works() -> None:
    client, server, agreed = negotiated(2**20, no_context_takeover=True)
    assert "server_no_context_takeover" in agreed
    assert "client_no_context_takeover" in agreed
    for _ in range(3):
        server.send("same text " * 100)
        assert client.receive_data(server.take_output()) == ["same text " * 100]


def bomb(size: int) -> bytes:
    """One masked, compressed binary frame that inflates to ``size`` zero bytes."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflater.compress(b"\x00" * size) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    return frame(0x2, body[:-4], rsv=0x40)


def test_zip_bomb_is_refused_without_inflating_it() -> None:
    _, server, _ = negotiated(2**20)
    wire = bomb(200 * 2**20)  # 200 MiB of zeros in ~200 KiB
    assert len(wire) < 300_000
    tracemalloc.start()
    try:
        events = server.receive_data(wire)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(events) == 1
    assert isinstance(events[0], Failed)
    assert events[0].code == CloseCode.SIZE
    assert peak < 8 * 2**20, f"inflating used {peak} bytes"


def test_compressed_message_just_under_the_limit_passes() -> None:
    _, server, _ = negotiated(100_000)
    assert server.receive_data(bomb(100_000)) == [b"\x00" * 100_000]
    _, server, _ = negotiated(100_000)
    events = server.receive_data(bomb(100_001))
    assert isinstance(events[0], Failed)


def test_garbage_compressed_payload_is_1007() -> None:
    _, server, _ = negotiated(2**20)
    events = server.receive_data(frame(0x2, b"\xff\xff\xff\xff not deflate", rsv=0x40))
    assert isinstance(events[0], Failed)
    assert events[0].code == CloseCode.INVALID


def test_bounded_deflate_is_used() -> None:
    assert isinstance(make_extensions("deflate")[0], BoundedDeflate)
    assert make_extensions(None) == []


def test_deflate_round_trip() -> None:
    client, server = pair(deflate=True)
    payload = "x" * 10_000
    client.send(payload)
    wire = client.take_output()
    assert len(wire) < 200  # really compressed
    assert server.receive_data(wire) == [payload]


def test_compressed_message_limit_counts_inflated_bytes() -> None:
    client, server = pair(limit=1000, deflate=True)
    client.send("z" * 5000)  # compresses to a few bytes
    events = server.receive_data(client.take_output())
    assert isinstance(events[0], Failed)
    assert events[0].code == CloseCode.SIZE
