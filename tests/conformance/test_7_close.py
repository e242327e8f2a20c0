"""Autobahn section 7: close handling (RFC 6455 sections 5.5.1, 7 and 7.4).

A close frame is answered by a close frame (echoing the code, section
5.5.1), after which the server sends nothing more and closes the TCP
connection first (section 7.1.1). A close frame body is empty or a 2-byte
code plus a UTF-8 reason, at most 125 bytes in all. Which codes a peer may
send (section 7.4 and the IANA "WebSocket Close Code Number Registry"):

- 1000-1003, 1007-1011 (RFC 6455) and 1012-1014 (registered with IANA:
  Service Restart, Try Again Later, Bad Gateway) are echoed;
- 3000-3999 (registered by libraries) and 4000-4999 (private use) are echoed;
- 0-999 (unused), 1004 (reserved), 1005, 1006, 1015 ("MUST NOT be set as a
  status code in a Close control frame by an endpoint"), the unassigned
  1016-2999 and anything from 5000 up are protocol errors: 1002.
"""

from __future__ import annotations

import pytest

from ._frames import CLOSE, PING, TEXT, close_payload, frame
from ._peers import Connect

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
               3000, 3001, 3500, 3999, 4000, 4001, 4500, 4999]
INVALID_CODES = [0, 1, 2, 999, 1004, 1005, 1006, 1015, 1016, 1100, 1999, 2000, 2500, 2998,
                 2999, 5000, 5001, 6000, 10000, 32768, 65535]


def test_message_then_close(connect: Connect) -> None:
    """7.1.1: echo, then our close: the close is echoed and the TCP stream ends."""
    peer = connect()
    peer.send(TEXT, b"Hello World!")
    peer.expect(("text", b"Hello World!"))
    peer.close(1000)
    peer.expect_close(1000)


def test_message_and_close_in_one_write(connect: Connect) -> None:
    """7.1.1 as Autobahn sends it (one write). The message arrived before the
    close frame and is delivered to the handler; Autobahn expects its echo
    before the close echo (section 5.5.1 lets an endpoint finish sending the
    current message before answering a close)."""
    peer = connect()
    peer.write(frame(TEXT, b"Hello World!") + frame(CLOSE, close_payload(1000)))
    peer.expect_close(1000, ("text", b"Hello World!"))


def test_close_twice(connect: Connect) -> None:
    """7.1.2: a second close frame is ignored: exactly one close comes back."""
    peer = connect()
    peer.close(1000)
    peer.close(1000)
    peer.expect_close(1000)


def test_ping_after_close(connect: Connect) -> None:
    """7.1.3: nothing is answered after the close frame: no pong."""
    peer = connect()
    peer.write(frame(CLOSE, close_payload(1000)) + frame(PING, b"after close"))
    peer.expect_close(1000)


def test_text_after_close(connect: Connect) -> None:
    """7.1.4: data after the close frame is not delivered (no echo)."""
    peer = connect()
    peer.write(frame(CLOSE, close_payload(1000)) + frame(TEXT, b"after close"))
    peer.expect_close(1000)


def test_large_message_then_close_then_ping(connect: Connect) -> None:
    """7.1.6: a 256 KiB message, close and ping back to back. Whether the echo
    gets out before the close is implementation-defined (Autobahn); if it does
    it must be whole. No pong either way; the close echo comes last."""
    peer = connect()
    data = b"BAsd7&jh23" * 26_214 + b"Bl"
    peer.write(frame(TEXT, data) + frame(CLOSE, close_payload(1000)) + frame(PING, b""))
    got = peer.rest()
    assert [e[:2] for e in got] in ([("text", data), ("close", 1000)], [("close", 1000)])


def test_close_without_body(connect: Connect) -> None:
    """7.3.1: an empty close frame (code 1005 for the receiver) is answered with
    an empty close frame, or 1000; never 1005 itself."""
    peer = connect()
    peer.send(CLOSE, b"")
    got = peer.rest()
    assert [e[:2] for e in got] in ([("close", None)], [("close", 1000)]), got


def test_close_with_one_byte_body(connect: Connect) -> None:
    """7.3.2: a 1-byte body cannot hold a code: 1002."""
    peer = connect()
    peer.send(CLOSE, b"\x03")
    peer.expect_close(1002)


@pytest.mark.parametrize("reason", [
    pytest.param(b"", id="7.3.3-no-reason"),
    pytest.param(b"Hello World!", id="7.3.4-reason"),
    pytest.param(b"*" * 123, id="7.3.5-123-bytes"),
    pytest.param("é".encode() * 61 + b"x", id="123-bytes-utf8"),
    pytest.param("😀".encode() * 30 + b"xyz", id="123-bytes-4-byte-chars"),
])
@pytest.mark.parametrize("chunk", [None, 1], ids=["whole", "writes1"])
def test_close_with_reason(connect: Connect, reason: bytes, chunk: int | None) -> None:
    """7.3.3-7.3.5: code 1000 with reasons up to the 123-byte maximum."""
    peer = connect()
    peer.send(CLOSE, close_payload(1000, reason), chunk=chunk)
    peer.expect_close(1000)


@pytest.mark.parametrize("length", [124, 125])
def test_close_reason_too_long(connect: Connect, length: int) -> None:
    """7.3.6: a reason of 124 bytes makes a 126-byte control frame: 1002."""
    peer = connect()
    peer.send(CLOSE, close_payload(1000, b"*" * length))
    peer.expect_close(1002)


def test_fragmented_close_fails(connect: Connect) -> None:
    """Section 5.5: a close frame with FIN clear is a fragmented control frame."""
    peer = connect()
    peer.send(CLOSE, close_payload(1000), fin=False)
    peer.expect_close(1002)


@pytest.mark.parametrize("code", VALID_CODES)
@pytest.mark.parametrize("reason", [b"", b"reason"], ids=["bare", "reason"])
def test_valid_code_is_echoed(connect: Connect, code: int, reason: bytes) -> None:
    """7.7.x: a valid, sendable code is echoed back (section 5.5.1)."""
    peer = connect()
    peer.send(CLOSE, close_payload(code, reason))
    peer.expect_close(code)


@pytest.mark.parametrize("code", INVALID_CODES)
@pytest.mark.parametrize("reason", [b"", b"reason"], ids=["bare", "reason"])
def test_invalid_code_fails(connect: Connect, code: int, reason: bytes) -> None:
    """7.9.x, 7.13.x: a code outside the ranges above fails with 1002."""
    peer = connect()
    peer.send(CLOSE, close_payload(code, reason))
    peer.expect_close(1002)


@pytest.mark.parametrize("code", range(1016, 3000, 83))
def test_unassigned_protocol_code_sweep(connect: Connect, code: int) -> None:
    """A sweep of the unassigned 1016-2999 range: all protocol errors."""
    peer = connect()
    peer.send(CLOSE, close_payload(code))
    peer.expect_close(1002)


@pytest.mark.parametrize("code", range(3000, 5000, 97))
def test_application_code_sweep(connect: Connect, code: int) -> None:
    """A sweep of 3000-4999: all echoed."""
    peer = connect()
    peer.send(CLOSE, close_payload(code))
    peer.expect_close(code)
