"""Autobahn section 6: UTF-8 handling (RFC 6455 sections 5.6 and 8.1).

"When an endpoint is to interpret a byte stream as UTF-8 but finds that the
byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail
the WebSocket Connection_" -- with close code 1007 (section 7.4.1). A text
message is validated as a whole: a valid character split across fragments
is fine, an invalid sequence is refused wherever it is split.

Every sequence of ``_utf8.py`` is sent as one frame, split into two
fragments at every position, one byte per fragment, one byte per write,
inside ASCII text, and as a close reason; invalid ones also in a fragment
that is not final (the server must fail fast, without waiting for the rest
of the message).
"""

from __future__ import annotations

from typing import Any

import pytest

from ._frames import CONT, TEXT, close_payload, fragments, frame, message
from ._peers import Connect, Peer
from ._utf8 import INVALID, KOSME, SEQUENCES


def cases(*, only_invalid: bool = False) -> list[Any]:
    return [pytest.param(data, valid, id=name) for name, data, valid in SEQUENCES
            if not (only_invalid and valid)]


def positions(length: int) -> list[int]:
    """Split points: all of them for short sequences, a sample for long ones."""
    if length <= 12:
        return list(range(1, length))
    return sorted({1, 2, 3, length // 2, length - 2, length - 1})


SPLITS = [
    pytest.param(data, valid, at, id=f"{name}-at-{at}")
    for name, data, valid in SEQUENCES
    for at in positions(len(data))
]


def check(peer: Peer, data: bytes, valid: bool) -> None:
    """The echo of a valid text, or close 1007 and the end of the stream."""
    if valid:
        peer.expect(("text", data))
        peer.finish()
    else:
        peer.expect_close(1007)


def test_the_table_is_right() -> None:
    """The hand-written validity of each sequence agrees with a strict decoder."""
    for name, data, valid in SEQUENCES:
        try:
            data.decode("utf-8", "strict")
            decodes = True
        except UnicodeDecodeError:
            decodes = False
        assert decodes == valid, name


@pytest.mark.parametrize(("data", "valid"), cases())
def test_single_frame(connect: Connect, data: bytes, valid: bool) -> None:
    """6.x.1: the sequence as one text frame."""
    peer = connect()
    peer.send(TEXT, data)
    check(peer, data, valid)


@pytest.mark.parametrize(("data", "valid", "at"), SPLITS)
def test_split_in_two_fragments(connect: Connect, data: bytes, valid: bool, at: int) -> None:
    """6.x.2: two fragments, split at every byte position."""
    peer = connect()
    peer.write(frame(TEXT, data[:at], fin=False) + frame(CONT, data[at:]))
    check(peer, data, valid)


@pytest.mark.parametrize(("data", "valid"), cases())
def test_one_byte_per_fragment(connect: Connect, data: bytes, valid: bool) -> None:
    """6.x.3 (Autobahn 6.2.4, 6.3.2): one frame per byte."""
    peer = connect()
    peer.write(message(TEXT, fragments(data, 1)))
    check(peer, data, valid)


@pytest.mark.parametrize(("data", "valid"), cases())
def test_one_byte_per_write(connect: Connect, data: bytes, valid: bool) -> None:
    """6.2.3: one frame, written one byte at a time."""
    peer = connect()
    peer.send(TEXT, data, chunk=1)
    check(peer, data, valid)


@pytest.mark.parametrize(("data", "valid"), cases())
def test_inside_ascii_text(connect: Connect, data: bytes, valid: bool) -> None:
    """The sequence between ASCII characters (a truncated sequence stays invalid)."""
    peer = connect()
    data = b"before " + data + b" after"
    peer.write(frame(TEXT, data[:3], fin=False) + frame(CONT, data[3:]))
    check(peer, data, valid)


@pytest.mark.parametrize(("data", "valid"), cases())
def test_as_close_reason(connect: Connect, data: bytes, valid: bool) -> None:
    """7.5.1: the close reason is UTF-8 too; an invalid one fails with 1007."""
    peer = connect()
    peer.send(0x8, close_payload(1000, data))
    peer.expect_close(1000 if valid else 1007)


@pytest.mark.parametrize(("data", "valid"), cases(only_invalid=True))
def test_fail_fast_on_non_final_fragment(connect: Connect, data: bytes, valid: bool) -> None:
    """6.4.1/6.4.2: the invalid sequence in a fragment that is not final (and an
    ASCII byte after it, so it cannot be the start of a valid character):
    the server fails at once, without waiting for the end of the message."""
    peer = connect()
    peer.send(TEXT, data + b"x", fin=False)
    peer.expect_close(1007)


@pytest.mark.parametrize(("data", "valid"), cases(only_invalid=True)[::4])
def test_fail_fast_inside_a_frame(connect: Connect, data: bytes, valid: bool) -> None:
    """6.4.3/6.4.4 (Autobahn's strict variant): the invalid sequence in the
    first part of a frame whose rest is never sent."""
    peer = connect()
    whole = frame(TEXT, data + b"x" + b"y" * 200)
    peer.write(whole[:-200])
    peer.expect_close(1007)


def test_fail_fast_after_valid_fragments(connect: Connect) -> None:
    """6.4.1: "κόσμε" fragment, then the invalid fragment, nothing after it."""
    peer = connect()
    peer.send(TEXT, KOSME, fin=False)
    peer.send(CONT, bytes.fromhex("f4908080") + b"x", fin=False)
    peer.expect_close(1007)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 65535])
def test_large_text_split_inside_characters(connect: Connect, size: int) -> None:
    """A long text of 1- to 4-byte characters, fragments cut through characters."""
    peer = connect()
    data = ("aé漢😀" * 10_000).encode()[: 65536 + 7 if size > 7 else 997]
    data = data.decode("utf-8", "ignore").encode()  # end on a character
    peer.write(message(TEXT, fragments(data, size)))
    peer.expect(("text", data))
    peer.finish()


@pytest.mark.parametrize(("name", "data"), [(n, d) for n, d, _ in INVALID[:8]])
def test_invalid_in_binary_is_fine(connect: Connect, name: str, data: bytes) -> None:
    """Binary messages are not UTF-8: the same bytes are echoed."""
    peer = connect()
    peer.send(0x2, data)
    peer.expect(("binary", data))
    peer.finish()
