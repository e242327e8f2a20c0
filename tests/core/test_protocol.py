"""ConnectionCore driven as an in-memory client/server pair."""

from __future__ import annotations

import struct

import pytest

from wskit import CloseCode, Error, ErrorKind, Message
from wskit._core.deflate import BoundedDeflate
from wskit._core.protocol import (
    CloseReceived,
    ConnectionCore,
    CoreState,
    Failed,
    Lost,
    Ping,
    Pong,
    encode_frame,
)


def pair(limit: int | None = 2**20, deflate: bool = False) -> tuple[ConnectionCore, ConnectionCore]:
    def exts(client: bool) -> list[BoundedDeflate]:
        if not deflate:
            return []
        ext = BoundedDeflate(client=client, max_message_size=limit)
        ext.finalize("permessage-deflate")
        return [ext]

    client = ConnectionCore(client=True, extensions=exts(True), max_message_size=limit)
    server = ConnectionCore(client=False, extensions=exts(False), max_message_size=limit)
    return client, server


def test_messages_round_trip_both_ways() -> None:
    client, server = pair()
    client.send("héllo")
    client.send(b"\x00\x01")
    assert server.receive_data(client.take_output()) == [Message("héllo"), Message(b"\x00\x01")]
    server.send("back")
    events = client.receive_data(server.take_output())
    assert events == [Message("back")]
    assert events[0].is_text


def test_deflate_round_trip() -> None:
    client, server = pair(deflate=True)
    payload = "x" * 10_000
    client.send(payload)
    wire = client.take_output()
    assert len(wire) < 200  # really compressed
    assert server.receive_data(wire) == [payload]


def test_byte_at_a_time_parsing() -> None:
    client, server = pair()
    client.send("split across many reads")
    events = []
    for byte in client.take_output():
        events += server.receive_data(bytes([byte]))
    assert events == ["split across many reads"]


def test_fragmented_message_is_joined() -> None:
    client, server = pair()
    proto = client._proto
    wire = proto.send_data("frag", fin=False) + proto.send_data("ment", fin=False)
    wire += proto.send_data("ed", fin=True)
    assert server.receive_data(bytes(wire)) == ["fragmented"]


def test_ping_is_answered_by_the_core() -> None:
    client, server = pair()
    client.ping(b"abc")
    events = server.receive_data(client.take_output())
    assert isinstance(events[0], Ping)
    assert events[0].data == b"abc"
    answer = client.receive_data(server.take_output())
    assert isinstance(answer[0], Pong)
    assert answer[0].data == b"abc"


def test_control_payload_limit() -> None:
    client, _ = pair()
    with pytest.raises(Error) as info:
        client.ping(b"x" * 126)
    assert info.value.kind is ErrorKind.USAGE  # the caller's mistake, not the peer's


def test_closing_handshake_initiated_by_client() -> None:
    client, server = pair()
    assert client.close(4000, "bye")
    assert client.state is CoreState.LOCAL_CLOSING
    assert not client.close()  # idempotent
    events = server.receive_data(client.take_output())
    assert len(events) == 1
    assert isinstance(events[0], CloseReceived)
    assert (events[0].code, events[0].reason) == (4000, "bye")
    assert server.state is CoreState.REMOTE_CLOSING  # the echo waits for answer_close()
    assert server.receive_data(b"anything") == []  # nothing is read after a close
    server.answer_close()
    assert server.state is CoreState.CLOSED
    echo = client.receive_data(server.take_output())
    assert isinstance(echo[0], CloseReceived)
    assert echo[0].code == 4000
    assert client.state is CoreState.CLOSED


def test_data_after_our_close_is_not_delivered() -> None:
    client, server = pair()
    server.send("late")
    late = server.take_output()
    client.close()
    assert client.receive_data(late) == []


def test_send_after_close_raises_queue_error() -> None:
    client, _ = pair()
    client.close()
    with pytest.raises(Error) as info:
        client.send("x")
    assert info.value.kind is ErrorKind.QUEUE


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_unsendable_close_codes_are_refused(code: int) -> None:
    client, _ = pair()
    with pytest.raises(Error):
        client.close(code)
    assert client.state is CoreState.OPEN


def test_end_of_stream_without_close_is_lost() -> None:
    _, server = pair()
    events = server.receive_data(None)
    assert len(events) == 1
    assert isinstance(events[0], Lost)
    assert server.state is CoreState.CLOSED


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
          mask: bytes = b"\x01\x02\x03\x04") -> bytes:
    """A masked client frame built by hand."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


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


def test_compressed_message_limit_counts_inflated_bytes() -> None:
    client, server = pair(limit=1000, deflate=True)
    client.send("z" * 5000)  # compresses to a few bytes
    events = server.receive_data(client.take_output())
    assert isinstance(events[0], Failed)
    assert events[0].code == CloseCode.SIZE


def test_no_limit() -> None:
    client, server = pair(limit=None)
    client.send(b"x" * 3_000_000)
    assert server.receive_data(client.take_output()) == [b"x" * 3_000_000]


def test_output_size_tracks_queue() -> None:
    client, _ = pair()
    client.send(b"x" * 1000)
    assert client.output_size == 1000 + 8  # 2 header + 2 length + 4 mask
    client.take_output()
    assert client.output_size == 0


def test_trailing_data_from_handshake_is_parsed() -> None:
    client, _ = pair()
    client.send("early")
    server = ConnectionCore(client=False, extensions=[], max_message_size=None,
                            trailing_data=client.take_output())
    assert server.pending_events() == ["early"]


def test_reply_to_a_message_that_came_with_the_close_goes_first() -> None:
    # Autobahn 7.1.1: a message and a close frame in one read get the echo,
    # then the close.
    client, server = pair()
    client.send("last words")
    client.close(1000)
    events = server.receive_data(client.take_output())
    assert events[0] == "last words"
    assert isinstance(events[1], CloseReceived)
    server.send("echo: last words")  # still allowed before answer_close()
    server.answer_close()
    with pytest.raises(Error):
        server.send("too late")
    out = server.take_output()
    # The echo frame (text, unmasked) comes first, then the close frame.
    assert out[:2] == bytes([0x81, len("echo: last words")])
    assert out[2:18] == b"echo: last words"
    assert out[18] == 0x88


def test_reply_to_a_message_before_a_bad_frame_goes_first() -> None:
    client, server = pair()
    client.send("fine")
    events = server.receive_data(client.take_output() + frame(0x3, b"bad"))
    assert events[0] == "fine"
    assert isinstance(events[1], Failed)
    server.send("reply")
    server.answer_close()
    assert server.state is CoreState.FAILED
    out = client.receive_data(server.take_output())
    assert out[0] == "reply"
    assert isinstance(out[1], CloseReceived)
    assert out[1].code == CloseCode.PROTOCOL


def test_close_while_an_answer_is_owed_sends_the_owed_answer() -> None:
    client, server = pair()
    client.close(4000, "bye")
    server.receive_data(client.take_output())
    assert not server.close(1001, "ignored")  # the peer's close is answered instead
    echo = client.receive_data(server.take_output())
    assert isinstance(echo[0], CloseReceived)
    assert echo[0].code == 4000


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


def test_shared_frames_only_for_plain_server_connections() -> None:
    client, _ = pair()
    assert not client.shares_frames  # client frames are masked
    _, server = pair(deflate=True)
    assert not server.shares_frames  # compressed per connection
