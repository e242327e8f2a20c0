"""BoundedDeflate: permessage-deflate that cannot be zip-bombed (``_core/deflate.py``)."""

from __future__ import annotations

import tracemalloc
import zlib

from wskit import CloseCode, Request
from wskit._core.deflate import BoundedDeflate
from wskit._core.handshake import ClientHandshake, ServerHandshake, make_extensions
from wskit._core.protocol import ConnectionCore, Failed, Ping

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


def offer_answer(offer: str, **kwargs: int | bool) -> str | bool | None:
    return BoundedDeflate(client=False, max_message_size=None, **kwargs).accept(offer)  # type: ignore[arg-type]


def test_invalid_offers_are_declined_and_valid_ones_normalized() -> None:
    # RFC 7692 section 5: unknown or repeated parameters, bad values.
    for offer in ["x-webkit-deflate-frame", "permessage-deflate; foo",
                  "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                  "permessage-deflate; server_no_context_takeover=1",
                  "permessage-deflate; server_max_window_bits=16",
                  "permessage-deflate; server_max_window_bits",
                  "permessage-deflate; client_max_window_bits=7"]:
        assert offer_answer(offer) is None, offer
    assert offer_answer('permessage-deflate; server_max_window_bits="10"') == \
        "server_max_window_bits=10"
    assert offer_answer("permessage-deflate; client_max_window_bits") == \
        "client_max_window_bits=15"


def test_only_the_first_acceptable_offer_is_answered() -> None:
    ext = BoundedDeflate(client=False, max_message_size=None)
    assert ext.accept("permessage-deflate; client_max_window_bits=12") == \
        "client_max_window_bits=12"
    assert ext.accept("permessage-deflate") is None
    assert ext.client_max_window_bits == 12


def test_control_frames_between_compressed_fragments() -> None:
    client, server = pair(deflate=True)
    # RFC 7692 6.1: a control frame is never compressed; RFC 6455 5.4: it
    # may come between the fragments of a (compressed) message.
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflater.compress(b"fragmented " * 50) + deflater.flush(zlib.Z_SYNC_FLUSH)
    half = len(body) // 2
    wire = frame(0x2, body[:half], fin=False, rsv=0x40) + frame(0x9, b"ping")
    wire += frame(0x0, body[half:-4])
    events = server.receive_data(wire)
    assert isinstance(events[0], Ping)
    assert events[1] == b"fragmented " * 50
    server.take_output()
    client.ping(b"uncompressed")
    assert client.take_output()[0] == 0x89  # FIN + ping, RSV1 clear
    assert isinstance(server.receive_data(frame(0x9, b"x", rsv=0x40))[0], Failed)


def test_uncompressed_message_on_a_deflate_connection() -> None:
    _, server = pair(deflate=True)
    assert server.receive_data(frame(0x1, b"plain") + frame(0x2, b"bin")) == ["plain", b"bin"]


def test_compressed_messages_without_a_limit() -> None:
    client, server = pair(limit=None, deflate=True)
    client.send(b"y" * 3_000_000)
    assert server.receive_data(client.take_output()) == [b"y" * 3_000_000]


def test_sync_tail_that_breaks_the_stream_is_1007() -> None:
    # The payload inflates cleanly, but the RFC 7692 7.2.2 tail appended to
    # it does not: the deflate data was cut in the middle of a block.
    data = b"".join(i.to_bytes(2, "big") for i in range(3000))
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH)
    _, server = pair(limit=None, deflate=True)
    events = server.receive_data(frame(0x2, body[:-6], rsv=0x40))
    assert isinstance(events[0], Failed)
    assert events[0].code == CloseCode.INVALID


def finished(data: bytes) -> bytes:
    """A complete deflate stream (its last block has BFINAL set)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    return deflater.compress(data) + deflater.flush(zlib.Z_FINISH)


def test_messages_ending_with_a_final_deflate_block() -> None:
    # Some peers finish the deflate stream in each message: the next one
    # starts a new stream, and the sync tail has nothing left to end.
    client, server = pair(deflate=True)
    for text in (b"first", b"second"):
        assert server.receive_data(frame(0x2, finished(text), rsv=0x40)) == [text]
    # Two finished streams in one message, and one that ends in garbage.
    both = frame(0x2, finished(b"one, ") + finished(b"two"), rsv=0x40)
    assert server.receive_data(both) == [b"one, two"]
    bad = server.receive_data(frame(0x2, finished(b"ok") + b"\xff\xff", rsv=0x40))
    assert isinstance(bad[0], Failed)
    assert bad[0].code == CloseCode.INVALID
    # The client side inflates with the server's window.
    assert client.receive_data(b"\xc2" + bytes([len(finished(b"hi"))]) + finished(b"hi")) == \
        [b"hi"]
