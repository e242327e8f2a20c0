"""Autobahn section 1 (framing) and the base framing rules of RFC 6455 section 5.2.

Text and binary messages at every payload-length boundary of the length
encoding (7-bit, 16-bit, 64-bit), written whole, in 997-byte writes and one
byte at a time; plus what the framing rules forbid: unmasked client frames
(section 5.1), non-minimal length encodings and a 64-bit length with its most
significant bit set (section 5.2).
"""

from __future__ import annotations

import pytest

from ._frames import BINARY, CLOSE, PING, TEXT, close_payload, frame
from ._peers import Connect

#: The boundaries of the three length encodings (Autobahn 1.1.1-1.1.7).
LENGTHS = [0, 1, 125, 126, 127, 128, 65535, 65536]


def payload(opcode: int, length: int) -> bytes:
    if opcode == TEXT:
        return b"*" * length
    return (bytes(range(256)) * (length // 256 + 1))[:length]


def writes(length: int) -> list[int | None]:
    # One byte at a time only while it stays fast (each write is a syscall).
    return [None, 997, 1] if length <= 128 else [None, 997]


CASES = [
    pytest.param(opcode, length, chunk,
                 id=f"{name}-{length}-{'whole' if chunk is None else f'writes{chunk}'}")
    for opcode, name in ((TEXT, "text"), (BINARY, "binary"))
    for length in LENGTHS
    for chunk in writes(length)
]


@pytest.mark.parametrize(("opcode", "length", "chunk"), CASES)
def test_echo(connect: Connect, opcode: int, length: int,
              chunk: int | None) -> None:
    """Autobahn 1.1.x / 1.2.x: the message comes back exactly."""
    peer = connect()
    data = payload(opcode, length)
    peer.send(opcode, data, chunk=chunk)
    peer.expect(("text" if opcode == TEXT else "binary", data))
    peer.finish()


def test_pipelined_messages(connect: Connect) -> None:
    """Several frames in one write are each echoed, in order."""
    peer = connect()
    sent = [(TEXT, b"one"), (BINARY, b"\x00two"), (TEXT, b""), (BINARY, b"\xff" * 300)]
    peer.write(b"".join(frame(op, data) for op, data in sent))
    peer.expect(*[("text" if op == TEXT else "binary", data) for op, data in sent])
    peer.finish()


def test_frames_in_the_handshake_packet(connect: Connect) -> None:
    """Frames written together with the upgrade request are not lost."""
    peer = connect(early=frame(TEXT, b"early") + frame(PING, b"p"))
    peer.expect(("text", b"early"), ("pong", b"p"))
    peer.finish()


@pytest.mark.parametrize("key", [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04"],
                         ids=["zero", "ones", "counting"])
def test_any_masking_key(connect: Connect, key: bytes) -> None:
    """Section 5.3: every masking key is valid, including all-zero."""
    peer = connect()
    peer.send(TEXT, b"masked text", key=key)
    peer.expect(("text", b"masked text"))
    peer.finish()


@pytest.mark.parametrize(("opcode", "data"), [
    pytest.param(TEXT, b"hello", id="text"),
    pytest.param(BINARY, b"\x00\x01", id="binary"),
    pytest.param(PING, b"ping", id="ping"),
    pytest.param(CLOSE, close_payload(1000), id="close"),
    pytest.param(TEXT, b"x" * 200, id="text-200"),
])
def test_unmasked_client_frame_fails(connect: Connect, opcode: int,
                                     data: bytes) -> None:
    """Section 5.1: a server MUST close the connection on an unmasked frame."""
    peer = connect()
    peer.send(opcode, data, masked=False)
    peer.expect_close(1002)


@pytest.mark.parametrize(("length", "length_bytes"), [
    pytest.param(0, 2, id="0-in-16bit"),
    pytest.param(125, 2, id="125-in-16bit"),
    pytest.param(0, 8, id="0-in-64bit"),
    pytest.param(126, 8, id="126-in-64bit"),
    pytest.param(65535, 8, id="65535-in-64bit"),
])
def test_non_minimal_length_fails(connect: Connect, length: int,
                                  length_bytes: int) -> None:
    """Section 5.2: "the minimal number of bytes MUST be used to encode the length"."""
    peer = connect()
    peer.send(BINARY, b"\x00" * length, length_bytes=length_bytes)
    peer.expect_close(1002)


def test_64bit_length_with_high_bit_fails(connect: Connect) -> None:
    """Section 5.2: the most significant bit of a 64-bit length MUST be 0.

    Only the header is sent: the server must fail without waiting for a payload.
    """
    peer = connect()
    peer.write(frame(BINARY, b"", declared=2**63 + 5))
    peer.expect_close(1002)


def test_valid_message_then_unmasked_frame(connect: Connect) -> None:
    """A valid message is echoed; the unmasked frame after it fails the connection."""
    peer = connect()
    peer.send(TEXT, b"first")
    peer.expect(("text", b"first"))
    peer.send(TEXT, b"second", masked=False)
    peer.send(PING, b"after")
    peer.expect_close(1002)
