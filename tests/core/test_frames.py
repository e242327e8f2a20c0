"""The frame layer (``_core/frames.py``): parsing, limits from frame headers,
the small-frame masker, whole binary frames assembled into their message,
late-registered close codes, and frames encoded once."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from wskit import CloseCode, ErrorKind
from wskit._core import masking
from wskit._core.frames import LATE_REGISTERED, FrameLayer, _Masker
from wskit._core.messages import BinaryMessage
from wskit._core.protocol import (
    CloseReceived,
    CoreState,
    Failed,
    Lost,
    Ping,
    ReadInto,
    encode_frame,
)

from ._wire import frame, pair


def test_byte_at_a_time_parsing() -> None:
    client, server = pair()
    client.send("split across many reads")
    events = []
    for byte in client.take_output():
        events += server.receive_data(bytes([byte]))
    assert events == ["split across many reads"]


def test_fragmented_message_is_joined() -> None:
    _, server = pair()
    proto = FrameLayer(True, [], None)  # a client's frames
    wire = proto.send_data("frag", fin=False) + proto.send_data("ment", fin=False)
    wire += proto.send_data("ed", fin=True)
    assert server.receive_data(bytes(wire)) == ["fragmented"]


@pytest.mark.parametrize(
    ("wire", "code", "kind"),
    [
        (frame(0x3, b"x"), CloseCode.PROTOCOL, ErrorKind.PROTOCOL),  # reserved opcode
        (frame(0x1, b"x", rsv=0x40), CloseCode.PROTOCOL, ErrorKind.PROTOCOL),  # RSV1, no ext
        (frame(0x9, b"x", fin=False), CloseCode.PROTOCOL, ErrorKind.PROTOCOL),  # fragmented ping
        (frame(0x1, b"\xff\xfe"), CloseCode.INVALID, ErrorKind.ENCODING),  # bad UTF-8
        (frame(0x0, b"x"), CloseCode.PROTOCOL, ErrorKind.PROTOCOL),  # continuation first
        (frame(0x8, b"\x03\xe8" + b"\xff"), CloseCode.INVALID, ErrorKind.ENCODING),
    ],
)
def test_protocol_violations_fail_the_connection(wire: bytes, code: CloseCode,
                                                 kind: ErrorKind) -> None:
    _, server = pair()
    events = server.receive_data(wire)
    assert len(events) == 1
    failed = events[0]
    assert isinstance(failed, Failed)
    assert failed.code == code
    assert failed.error.kind is kind
    server.answer_close()
    assert server.state is CoreState.FAILED
    out = server.take_output()
    # Our close frame carries the code (server frames are unmasked).
    assert out[0] == 0x88
    assert struct.unpack("!H", out[2:4])[0] == code
    assert server.receive_data(b"more") == []


def test_unmasked_client_frame_is_a_protocol_error() -> None:
    _, server = pair()
    events = server.receive_data(b"\x81\x01x")
    assert isinstance(events[0], Failed)
    assert events[0].code == CloseCode.PROTOCOL


def test_oversized_message_refused_from_its_header() -> None:
    _, server = pair(limit=1000)
    # Only the header of a 1 MB frame: refused before any payload arrives.
    head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 1_000_000) + b"\x00\x00\x00\x00"
    events = server.receive_data(head)
    assert isinstance(events[0], Failed)
    assert events[0].code == CloseCode.SIZE
    assert events[0].error.kind is ErrorKind.CAPACITY
    assert "1000 bytes" in str(events[0].error)


def test_oversized_fragmented_message_refused() -> None:
    _, server = pair(limit=100)
    wire = frame(0x2, b"a" * 60, fin=False) + frame(0x0, b"b" * 60)
    events = server.receive_data(wire)
    assert isinstance(events[-1], Failed)
    assert events[-1].code == CloseCode.SIZE


def test_message_at_the_limit_is_accepted() -> None:
    _, server = pair(limit=100)
    assert server.receive_data(frame(0x2, b"a" * 100)) == [b"a" * 100]


def test_no_limit() -> None:
    client, server = pair(limit=None)
    client.send(b"x" * 3_000_000)
    assert server.receive_data(client.take_output()) == [b"x" * 3_000_000]


@pytest.mark.parametrize("code", [1012, 1013, 1014])
def test_iana_registered_codes_are_accepted_and_sendable(code: int) -> None:
    client, server = pair()
    assert client.close(code, "r")
    events = server.receive_data(client.take_output())
    assert isinstance(events[0], CloseReceived)
    assert events[0].code == code


@pytest.mark.parametrize("data", ["", "é" * 10, "x" * 125, "y" * 126, b"z" * 65535,
                                  b"w" * 65536, b"v" * 70000])
def test_encode_frame_matches_wsproto(data: str | bytes) -> None:
    _, server = pair(limit=None)
    assert server.shares_frames
    server.send(data)
    assert encode_frame(data) == server.take_output()


def test_masker_unmasks_in_pieces() -> None:
    # A frame read in pieces of every size: the key carries over.
    _, server = pair()
    payload = bytes(range(256)) * 4
    wire = frame(0x2, payload)
    for step in (1, 3, 5, 1000):
        _, server = pair()
        events = []
        for at in range(0, len(wire), step):
            events += server.receive_data(wire[at:at + step])
        assert events == [payload], step
    assert _Masker(b"abcd").process(b"") == b""


def _unmask_client_frame(wire: bytes) -> tuple[int, int, bytes]:
    """(first byte, length code, payload) of one masked frame, by hand."""
    assert wire[1] & 0x80, "a client frame is masked"
    code = wire[1] & 0x7F
    at = 2 + {126: 2, 127: 8}.get(code, 0)
    size = int.from_bytes(wire[2:at], "big") if at > 2 else code
    key, body = wire[at:at + 4], wire[at + 4:]
    assert len(body) == size
    return wire[0], code, bytes(b ^ key[i % 4] for i, b in enumerate(body))


@pytest.mark.parametrize(("size", "code"), [(0, 0), (125, 125), (126, 126), (65535, 126),
                                            (65536, 127), (70001, 127)])
def test_client_frames_are_masked_with_the_right_header(size: int, code: int) -> None:
    client, server = pair(limit=None)
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    client.send(payload)
    wire = bytes(client.take_output())
    assert _unmask_client_frame(wire) == (0x82, code, payload)
    assert server.receive_data(wire) == [payload]


def test_client_frames_take_a_fresh_key_each() -> None:
    client, _ = pair()
    client.send(b"same")
    client.send(b"same")
    first, second = client.take_buffers()
    assert first[:2] == second[:2] and first[2:6] != second[2:6]


def test_client_control_frames_and_compressed_frames() -> None:
    client, server = pair(deflate=True)
    client.send("deflated " * 20)
    client.ping(b"p")
    wire = bytes(client.take_output())
    assert wire[0] == 0xC1  # FIN, RSV1 (compressed), text
    events = server.receive_data(wire)
    assert events[0] == "deflated " * 20
    assert [type(e).__name__ for e in events] == ["TextMessage", "Ping"]
    layer = FrameLayer(True, [], None)
    with pytest.raises(ValueError, match="too long for control frame"):
        layer.ping(b"x" * 126)  # as wsproto's own serializer refuses


def test_close_without_a_code_is_answered_with_an_empty_close() -> None:
    _, server = pair()
    events = server.receive_data(frame(0x8, b""))
    assert isinstance(events[0], CloseReceived)
    assert events[0].code == CloseCode.STATUS  # 1005: reported, never sent
    server.answer_close()
    assert server.take_output() == b"\x88\x00"


def test_late_registered_code_with_bad_utf8_reason_is_1007() -> None:
    _, server = pair()
    events = server.receive_data(frame(0x8, struct.pack("!H", 1014) + b"\xff"))
    assert isinstance(events[0], Failed)
    assert events[0].code == CloseCode.INVALID
    assert events[0].error.kind is ErrorKind.ENCODING
    assert sorted(LATE_REGISTERED) == [1014]


def test_a_fed_bytearray_may_change_afterwards() -> None:
    # The receive buffer keeps what it is fed without copying only when it
    # cannot change: a caller reusing its bytearray must not corrupt a frame
    # that is still incomplete.
    _, server = pair()
    wire = frame(0x2, b"payload!")
    chunk = bytearray(wire[:5])
    assert server.receive_data(chunk) == []
    chunk[:] = b"\x00" * 5
    assert server.receive_data(wire[5:]) == [b"payload!"]


# -- A whole binary frame, assembled by the frame layer ---------------------


@pytest.mark.parametrize("client_side", [False, True], ids=["server-unmasks", "client-copies"])
@pytest.mark.parametrize("cut", [1, 3, 7, 4096, 65_536, 300_000])
def test_binary_frame_in_pieces_becomes_one_message(client_side: bool, cut: int) -> None:
    client, server = pair()
    payload = os.urandom(300_001)
    sender, receiver = (server, client) if client_side else (client, server)
    sender.send(payload)
    sender.send(b"next")
    wire = bytes(sender.take_output())
    events: list[object] = []
    for start in range(0, len(wire), cut):
        events += receiver.receive_data(wire[start:start + cut])
    assert events == [payload, b"next"]
    assert all(type(event) is BinaryMessage for event in events)


def test_empty_binary_frame_is_an_empty_message() -> None:
    _, server = pair()
    events = server.receive_data(frame(0x2, b"") + frame(0x2, b"after"))
    assert events == [b"", b"after"]
    assert type(events[0]) is BinaryMessage


def test_binary_frame_between_pings_and_text() -> None:
    _, server = pair()
    big = os.urandom(70_000)
    wire = frame(0x1, b"a") + frame(0x2, big) + frame(0x9, b"p") + frame(0x2, b"b")
    events = server.receive_data(wire[:30_000]) + server.receive_data(wire[30_000:])
    assert events[:2] == ["a", big]
    assert isinstance(events[2], Ping) and events[2].data == b"p"
    assert events[3] == b"b"


def test_binary_frame_inside_a_fragmented_message_fails_at_its_header() -> None:
    # Not assembled: the protocol error comes with the header, before any of
    # its payload arrived, as wsproto reports it.
    _, server = pair()
    assert server.receive_data(frame(0x2, b"start", fin=False)) == []
    head = frame(0x2, b"x" * 1000)[:8]
    events = server.receive_data(head + b"x")
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert events[0].code == CloseCode.PROTOCOL
    assert "expected CONTINUATION" in events[0].reason


def test_fragmented_binary_message_is_joined_into_a_binary_message() -> None:
    _, server = pair()
    wire = frame(0x2, b"frag", fin=False) + frame(0x0, b"ment", fin=False) + frame(0x0, b"ed")
    events = server.receive_data(wire)
    assert events == [b"fragmented"]
    assert type(events[0]) is BinaryMessage


def test_assembled_frame_still_refused_from_its_header_when_too_big() -> None:
    _, server = pair(limit=100_000)
    assert server.receive_data(frame(0x2, b"a" * 100_000)[:50_000]) == []
    events = server.receive_data(frame(0x2, b"a" * 100_000)[50_000:] + frame(0x2, b"b" * 100_001))
    assert events[0] == b"a" * 100_000
    assert isinstance(events[1], Failed) and events[1].code == CloseCode.SIZE


def test_end_of_stream_inside_an_assembled_frame_is_lost() -> None:
    _, server = pair()
    assert server.receive_data(frame(0x2, b"z" * 10_000)[:5_000]) == []
    events = server.receive_data(b"")
    assert len(events) == 1 and isinstance(events[0], Lost)


def test_the_rest_of_a_binary_frame_is_read_straight_into_its_message() -> None:
    _, server = pair()
    payload = os.urandom(200_000)
    wire = frame(0x2, payload) + frame(0x1, b"after")
    assert server.payload_sink is None  # nothing under way
    assert server.receive_data(wire[:10]) == []
    assert server.payload_sink is None  # a header cut short: not a frame yet
    assert server.receive_data(wire[10:1000]) == []
    sink = server.payload_sink
    assert sink is not None
    assert sink.missing == len(payload) - (1000 - 14)  # 14: header and mask
    a, b = socket.socketpair()
    with a, b:
        a.sendall(wire[1000:])
        size = sink.read_from(b.fileno(), 2**20)  # never past the frame
        assert size == len(wire) - 1000 - len(frame(0x1, b"after")) and sink.missing == 0
        events = server.receive_data(ReadInto(size))
        assert events == [payload] and type(events[0]) is BinaryMessage
        assert server.payload_sink is None
        assert server.receive_data(b.recv(100)) == ["after"]  # the rest, as usual


def test_nothing_read_into_the_frame_is_the_end_of_the_stream() -> None:
    _, server = pair()
    assert server.receive_data(frame(0x2, b"z" * 10_000)[:5_000]) == []
    assert server.payload_sink is not None
    events = server.receive_data(ReadInto(0))
    assert len(events) == 1 and isinstance(events[0], Lost)
    assert server.payload_sink is None  # closed: nothing more is read


def test_no_payload_sink_for_text_fragments_or_compressed_frames() -> None:
    _, server = pair()
    assert server.receive_data(frame(0x1, b"t" * 5_000)[:1_000]) == []
    assert server.payload_sink is None  # text: wsproto's path (UTF-8 checked as it comes)
    _, server = pair()
    assert server.receive_data(frame(0x2, b"f" * 5_000, fin=False)[:1_000]) == []
    assert server.payload_sink is None  # a fragment
    client, server = pair(deflate=True)
    client.send(os.urandom(5_000))
    assert server.receive_data(client.take_output()[:1_000]) == []
    assert server.payload_sink is None  # an extension


def test_the_first_large_frame_prepares_the_allocator() -> None:
    # masking.expect_large (why: its docstring) runs before a large frame is
    # assembled or built, and never for small ones.
    masking.expect_large.cache_clear()
    client, server = pair()
    client.send(b"s" * (masking.LARGE - 1))
    assert server.receive_data(client.take_output()) == [b"s" * (masking.LARGE - 1)]
    assert masking.expect_large.cache_info().currsize == 0
    assert server.receive_data(frame(0x2, b"L" * masking.LARGE)[:100]) == []
    assert masking.expect_large.cache_info().currsize == 1
    masking.expect_large.cache_clear()
    client.send(b"L" * masking.LARGE)  # a client's frame, built
    assert masking.expect_large.cache_info().currsize == 1


@pytest.mark.parametrize(("payload", "expected"), [
    (b"", (1005, "")),
    (struct.pack("!H", 1014) + b"r", (1014, "r")),
])
def test_the_frame_layer_reads_close_frames(payload: bytes, expected: tuple[int, str]) -> None:
    # The core reads these itself (smallframes.take_close); wsproto's frame
    # layer still does whenever the core hands it a close frame.
    layer = FrameLayer(False, [], None)
    layer.receive_bytes(frame(0x8, payload))
    (got,) = list(layer.received_frames())
    assert got.payload == expected
