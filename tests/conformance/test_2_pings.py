"""Autobahn section 2: pings and pongs (RFC 6455 sections 5.5.2 and 5.5.3).

A ping is answered by a pong with the same payload; an unsolicited pong is
ignored; a control frame may carry at most 125 bytes and may not be
fragmented (section 5.5).
"""

from __future__ import annotations

import pytest

from ._frames import CONT, PING, PONG, TEXT, frame
from ._peers import Connect

PING_PAYLOADS = [
    pytest.param(b"", id="2.1-empty"),
    pytest.param(b"Hello, world!", id="2.2-text"),
    pytest.param(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", id="2.3-binary"),
    pytest.param(b"\xfe" * 125, id="2.4-125-bytes"),
    pytest.param("κόσμε".encode(), id="utf8"),
    pytest.param(b"\x88\x02\x03\xe8", id="looks-like-a-close-frame"),
]


@pytest.mark.parametrize("data", PING_PAYLOADS)
@pytest.mark.parametrize("chunk", [None, 1], ids=["whole", "writes1"])
def test_ping_gets_pong(connect: Connect, data: bytes, chunk: int | None) -> None:
    """2.1-2.4, 2.6: the pong carries the ping's payload, byte for byte."""
    peer = connect()
    peer.send(PING, data, chunk=chunk)
    peer.expect(("pong", data))
    peer.finish()


@pytest.mark.parametrize("size", [126, 127, 1000, 65536])
@pytest.mark.parametrize("opcode", [PING, PONG], ids=["ping", "pong"])
def test_control_payload_over_125_fails(connect: Connect, opcode: int, size: int) -> None:
    """2.5: section 5.5, "all control frames MUST have a payload length of 125
    bytes or less"; the server fails from the header, without waiting."""
    peer = connect()
    peer.send(opcode, b"\xfe" * size)
    peer.expect_close(1002)


@pytest.mark.parametrize("data", [b"", b"unsolicited"], ids=["2.7-empty", "2.8-payload"])
def test_unsolicited_pong_is_ignored(connect: Connect, data: bytes) -> None:
    """2.7, 2.8: section 5.5.3, "a response to an unsolicited Pong frame is not expected"."""
    peer = connect()
    peer.send(PONG, data)
    peer.send(TEXT, b"after the pong")
    peer.expect(("text", b"after the pong"))
    peer.finish()


def test_pong_then_ping(connect: Connect) -> None:
    """2.9: an unsolicited pong, then a ping: only the ping is answered."""
    peer = connect()
    peer.send(PONG, b"unsolicited pong payload")
    peer.send(PING, b"ping payload")
    peer.expect(("pong", b"ping payload"))
    peer.finish()


@pytest.mark.parametrize("chunk", [None, 1], ids=["2.10-whole", "2.11-writes1"])
def test_ten_pings(connect: Connect, chunk: int | None) -> None:
    """2.10, 2.11: ten pings in a row.

    Section 5.5.3: an endpoint MAY answer only the most recent of several
    pings not yet answered. So the pongs must be an in-order subsequence of
    the pings that ends with the last one.
    """
    peer = connect()
    pings = [f"payload-{i}".encode() for i in range(10)]
    peer.write(b"".join(frame(PING, data) for data in pings) + frame(TEXT, b"end"), chunk)
    peer.expect_with_pongs([("text", b"end")], pings)
    peer.finish()


@pytest.mark.parametrize("opcode", [PING, PONG], ids=["5.1-ping", "5.2-pong"])
def test_fragmented_control_frame_fails(connect: Connect, opcode: int) -> None:
    """5.1, 5.2: section 5.5, "control frames MUST NOT be fragmented"."""
    peer = connect()
    peer.send(opcode, b"frag", fin=False)
    peer.send(CONT, b"ment")
    peer.expect_close(1002)


def test_ping_with_fin_clear_alone_fails(connect: Connect) -> None:
    """A ping with FIN=0 fails the connection at once: nothing follows it."""
    peer = connect()
    peer.send(PING, b"", fin=False)
    peer.expect_close(1002)


def test_ping_between_messages(connect: Connect) -> None:
    """Pings and messages interleaved: every message echoed, every ping answered."""
    peer = connect()
    parts = []
    for i in range(20):
        parts.append(frame(TEXT, f"message {i}".encode()))
        parts.append(frame(PING, f"ping {i}".encode()))
    peer.write(b"".join(parts))
    peer.expect_with_pongs([("text", f"message {i}".encode()) for i in range(20)],
                           [f"ping {i}".encode() for i in range(20)])
    peer.finish()
