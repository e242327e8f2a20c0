"""Autobahn sections 12 and 13: permessage-deflate (RFC 7692).

12.x: messages of many sizes and kinds, compressed by us, echoed (and
compressed) by the server, with the default offer. 13.x: the same under
every combination of negotiation parameters (context takeover, window
bits), checking that the answer follows RFC 7692 section 7 and that the
server compresses within the window it agreed to (our inflater is created
with exactly that window). Then the edges: fragmented compressed messages,
uncompressed messages on a compressing connection, broken deflate data,
invalid UTF-8 inside compressed text, ``max_message_size`` counted after
inflation, a compression bomb, and offers the server must decline
(section 5: unknown or invalid parameters).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tracemalloc
import zlib

import pytest

from ._frames import (
    BINARY,
    CONT,
    PING,
    TEXT,
    Deflate,
    fragments,
    frame,
    parse_extension,
    parse_head,
    upgrade_request,
)
from ._peers import DEFLATE, SMALL_LIMIT, TIMEOUT, BackgroundServer, Connect, Peer

KIB = 2**10

_WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "κόσμε", "漢字",
          "websocket", "frame", "deflate", "message", "payload", "window", "context"]


def corpus(kind: str, length: int, seed: int = 0) -> bytes:
    """Deterministic payloads: compressible text, incompressible bytes, mixed."""
    _rng = random.Random(f"{kind}-{length}-{seed}")
    if kind == "text":
        out = b""
        while len(out) < length:
            out += (" ".join(_rng.choice(_WORDS) for _ in range(64)) + "\n").encode()
        return out[:length].decode("utf-8", "ignore").encode()
    if kind == "random":
        return _rng.randbytes(length)
    block = _rng.randbytes(max(1, length // 8))  # "mixed": repeats at long distances
    return (block * 9)[:length]


def kind_event(kind: str) -> str:
    return "text" if kind == "text" else "binary"


def opcode_of(kind: str) -> int:
    return TEXT if kind == "text" else BINARY


def round_trip(peer: Peer, kind: str, length: int, count: int = 5) -> None:
    """``count`` compressed messages, each echoed exactly."""
    for i in range(count):
        data = corpus(kind, length, i)
        peer.write(peer.compressed(opcode_of(kind), data))
        peer.expect((kind_event(kind), data))


# -- 12.x: the default offer ------------------------------------------------

SIZES_12 = [16, 64, 256, KIB, 4 * KIB, 8 * KIB, 16 * KIB, 32 * KIB, 64 * KIB, 128 * KIB,
            256 * KIB]


@pytest.mark.parametrize("kind", ["text", "random", "mixed"])
@pytest.mark.parametrize("length", SIZES_12)
def test_12_messages(connect: Connect, kind: str, length: int) -> None:
    """12.1-12.5: compressed messages of each size round-trip exactly."""
    peer = connect(extensions=DEFLATE)
    assert peer.extension is not None
    round_trip(peer, kind, length)
    peer.finish()


# -- 13.x: negotiation parameters ---------------------------------------------

OFFERS = [
    "permessage-deflate",
    "permessage-deflate; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover",
    "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_max_window_bits",
    *[f"permessage-deflate; client_max_window_bits={bits}" for bits in (9, 10, 12, 15)],
    *[f"permessage-deflate; server_max_window_bits={bits}" for bits in (9, 10, 11, 12, 13, 15)],
    "permessage-deflate; client_max_window_bits=9; server_max_window_bits=9",
    "permessage-deflate; client_max_window_bits=15; server_max_window_bits=15",
    "permessage-deflate; client_max_window_bits; server_max_window_bits=10; "
    "client_no_context_takeover; server_no_context_takeover",
]


def check_answer(offer: str, answer: str) -> None:
    """RFC 7692 section 7: the answer to the (single) offer ``offer``."""
    _, asked = parse_extension(offer)
    name, params = parse_extension(answer)
    assert name == DEFLATE
    assert set(params) <= {"server_no_context_takeover", "client_no_context_takeover",
                           "server_max_window_bits", "client_max_window_bits"}, answer
    assert answer.count(";") == len(params), f"duplicate parameter in {answer!r}"
    # 7.1.1.1: server_no_context_takeover, when offered, is in the answer.
    if "server_no_context_takeover" in asked:
        assert "server_no_context_takeover" in params, answer
    for side in ("server", "client"):
        value = params.get(f"{side}_max_window_bits", "absent")
        if value == "absent":
            continue
        assert value is not None and 8 <= int(value) <= 15, answer
    # 7.1.2.1: no larger server window than offered.
    if asked.get("server_max_window_bits"):
        got = params.get("server_max_window_bits")
        assert got is not None and int(got) <= int(asked["server_max_window_bits"] or 15)
    # 7.1.2.2: client_max_window_bits only if the offer had it, no larger.
    if "client_max_window_bits" not in asked:
        assert "client_max_window_bits" not in params, answer
    elif asked["client_max_window_bits"] and "client_max_window_bits" in params:
        assert int(params["client_max_window_bits"] or 15) <= int(
            asked["client_max_window_bits"])


@pytest.mark.parametrize("offer", OFFERS)
@pytest.mark.parametrize("kind", ["text", "mixed"])
@pytest.mark.parametrize("length", [64, 4 * KIB, 64 * KIB])
def test_13_parameters(connect: Connect, offer: str, kind: str, length: int) -> None:
    """13.1-13.7: each offer is accepted with a valid answer, and messages
    round-trip under the agreed context takeover and windows."""
    peer = connect(extensions=offer)
    assert peer.extension is not None, f"server declined {offer!r}"
    check_answer(offer, peer.extension)
    round_trip(peer, kind, length)
    peer.finish()


@pytest.mark.parametrize("offer", [
    'permessage-deflate; server_max_window_bits="10"',
    'permessage-deflate; client_max_window_bits="12"',
])
def test_13_quoted_parameter_value(connect: Connect, offer: str) -> None:
    """RFC 7692 section 5 (RFC 6455 section 9.1): a parameter value may be a
    quoted-string; accepted (then it works) or declined, but answered."""
    peer = connect(extensions=offer)
    if peer.extension is not None:
        check_answer(offer.replace('"', ""), peer.extension)
        round_trip(peer, "mixed", 4 * KIB)
    peer.finish()


def test_13_answer_picks_one_of_several_offers(connect: Connect) -> None:
    """Several offers: the answer agrees to one, and the server's inflater uses
    that offer's parameters, not those of another (section 5.1)."""
    peer = connect(extensions="permessage-deflate; client_max_window_bits=9, "
                              "permessage-deflate")
    assert peer.extension is not None
    assert peer.deflate is not None
    # Repeats 4 KiB apart: back-references beyond a 512-byte window.
    round_trip(peer, "mixed", 36 * KIB, count=2)
    peer.finish()


# -- compressed frames and their edges ---------------------------------------

@pytest.mark.parametrize("size", [1, 2, 7, 100, 1000])
@pytest.mark.parametrize("kind", ["text", "random"])
def test_fragmented_compressed_message(connect: Connect, size: int, kind: str) -> None:
    """RSV1 on the first fragment only; the compressed bytes cut anywhere."""
    peer = connect(extensions=DEFLATE)
    for i in range(3):
        data = corpus(kind, 5000, i)
        peer.write(peer.compressed(opcode_of(kind), data, size=size))
        peer.expect((kind_event(kind), data))
    peer.finish()


@pytest.mark.parametrize("gap", [1, 2, 5])
def test_ping_inside_compressed_message(connect: Connect, gap: int) -> None:
    """A ping between fragments of a compressed message (section 5.4: control
    frames may be injected) must not disturb the inflation of the rest."""
    peer = connect(extensions=DEFLATE)
    assert peer.deflate is not None
    data = corpus("text", 3000)
    pieces = fragments(peer.deflate.compress(data), 100)
    frames = [frame(TEXT if i == 0 else CONT, p, fin=i == len(pieces) - 1,
                    rsv=4 if i == 0 else 0) for i, p in enumerate(pieces)]
    frames.insert(gap, frame(PING, b"inside"))
    peer.write(b"".join(frames))
    peer.expect(("pong", b"inside"), ("text", data))
    peer.finish()


@pytest.mark.parametrize("kind", ["text", "random"])
def test_uncompressed_message_on_compressing_connection(connect: Connect, kind: str) -> None:
    """RFC 7692 section 6: a message without RSV1 is simply not compressed."""
    peer = connect(extensions=DEFLATE)
    for i in range(6):
        data = corpus(kind, 2000, i)
        if i % 2:
            peer.send(opcode_of(kind), data)
        else:
            peer.write(peer.compressed(opcode_of(kind), data))
        peer.expect((kind_event(kind), data))
    peer.finish()


@pytest.mark.parametrize("body", [b"\x00", b"", b"\x02\x00"], ids=["00", "empty", "0200"])
def test_empty_compressed_message(connect: Connect, body: bytes) -> None:
    """Section 7.2.3.6: an empty message compresses to a single 0x00 (or to
    nothing, or to an empty fixed block)."""
    peer = connect(extensions=DEFLATE)
    peer.send(TEXT, body, rsv=4)
    peer.expect(("text", b""))
    peer.finish()


@pytest.mark.parametrize("body", [
    pytest.param(b"\xff\xff\xff\xff", id="invalid-block-type"),
    pytest.param(b"\x01\x05\x00\x00\x00abcde", id="stored-length-mismatch"),
    pytest.param(zlib.compress(b"zlib header, not raw deflate"), id="zlib-wrapper"),
])
def test_broken_deflate_data(connect: Connect, body: bytes) -> None:
    """Data that does not inflate fails the connection (1007: the payload is
    not consistent with the message type; Autobahn accepts 1002 too)."""
    peer = connect(extensions=DEFLATE)
    peer.send(BINARY, body, rsv=4)
    got = peer.rest()
    assert [e[:2] for e in got] in ([("close", 1007)], [("close", 1002)]), got


# RFC 7692 section 7.2.3: the example payloads, each sent twice in a row.
RFC_EXAMPLES = [
    pytest.param(["f248cdc9c90700", "f248cdc9c90700"], id="7.2.3.1-hello"),
    pytest.param(["f248cdc9c90700", "f200110000"], id="7.2.3.2-shared-context"),
    pytest.param(["000500faff48656c6c6f00", "000500faff48656c6c6f00"], id="7.2.3.3-stored"),
    pytest.param(["f348cdc9c9070000", "f348cdc9c9070000"], id="7.2.3.4-bfinal"),
    pytest.param(["f24805000000ffffcac9c90700", "f24805000000ffffcac9c90700"],
                 id="7.2.3.5-two-blocks"),
]


@pytest.mark.parametrize("payloads", RFC_EXAMPLES)
def test_rfc7692_examples(connect: Connect, payloads: list[str]) -> None:
    """Each example of section 7.2.3 inflates to "Hello", also the second time
    (a block with BFINAL set ends the DEFLATE stream; the next message starts
    a new one, as browsers do)."""
    peer = connect(extensions=DEFLATE)
    for hexa in payloads:
        peer.send(TEXT, bytes.fromhex(hexa), rsv=4)
        peer.expect(("text", b"Hello"))
    peer.finish()


@pytest.mark.parametrize("data", [b"\xce", b"abc\xff", b"\xed\xa0\x80", b"ok \xc0\xaf"])
def test_invalid_utf8_in_compressed_text(connect: Connect, data: bytes) -> None:
    """UTF-8 is checked after inflation: 1007."""
    peer = connect(extensions=DEFLATE)
    peer.write(peer.compressed(TEXT, data))
    peer.expect_close(1007)


# -- max_message_size counts inflated bytes ------------------------------------

@pytest.mark.parametrize("kind", ["text", "random"])
def test_compressed_at_the_limit(connect_small: Connect, kind: str) -> None:
    peer = connect_small(extensions=DEFLATE)
    data = corpus(kind, SMALL_LIMIT)
    data += b"x" * (SMALL_LIMIT - len(data))
    peer.write(peer.compressed(opcode_of(kind), data))
    peer.expect((kind_event(kind), data))
    peer.finish()


@pytest.mark.parametrize("kind", ["text", "random"])
@pytest.mark.parametrize("size", [None, 10], ids=["whole", "frags10"])
def test_compressed_over_the_limit(connect_small: Connect, kind: str, size: int | None) -> None:
    """Inflating to one byte over max_message_size: 1009."""
    peer = connect_small(extensions=DEFLATE)
    data = corpus(kind, SMALL_LIMIT)
    data += b"x" * (SMALL_LIMIT + 1 - len(data))
    peer.write(peer.compressed(opcode_of(kind), data, size=size))
    peer.expect_close(1009)


def _bomb(megabytes: int) -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = b"\x00" * 2**20
    out = b"".join(deflate.compress(zeros) for _ in range(megabytes))
    return (out + deflate.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_compression_bomb(connect_small: Connect) -> None:
    """64 MiB of zeros in a 64 KiB frame: refused with 1009 without being
    inflated (memory traced while the server handles it stays small)."""
    bomb = frame(BINARY, _bomb(64), rsv=4)
    peer = connect_small(extensions=DEFLATE)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        peer.write(bomb)
        peer.expect_close(1009)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB allocated to refuse a bomb"


# -- offers the server must decline (RFC 7692 section 5) -----------------------

def handshake(port: int, offer: str) -> tuple[str, dict[str, list[str]], socket.socket,
                                               bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    request, _ = upgrade_request("127.0.0.1", port, extensions=offer)
    data = b""
    with contextlib.ExitStack() as on_error:
        on_error.callback(sock.close)
        sock.sendall(request)
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                assert chunk, f"server closed the connection without answering {offer!r}"
                data += chunk
        except TimeoutError:
            raise AssertionError(f"no answer to the offer {offer!r}") from None
        on_error.pop_all()
    status, headers, rest = parse_head(data)
    return status, headers, sock, rest


@pytest.mark.parametrize("offer", [
    "permessage-deflate; foo=bar",
    "permessage-deflate; foo",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=0",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=abc",
    "permessage-deflate; client_max_window_bits=abc",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; client_max_window_bits=",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_max_window_bits=10; client_max_window_bits=11",
    "x-webkit-deflate-frame",
    "permessage-deflate-x",
])
def test_invalid_offer_is_declined(echo_server: BackgroundServer, offer: str) -> None:
    """An offer with an unknown, duplicated or invalid parameter is declined:
    101 without the extension (or the handshake refused with 400), never a
    101 agreeing to it, never silence."""
    status, headers, sock, rest = handshake(echo_server.port, offer)
    with sock:
        if status.startswith("HTTP/1.1 400"):
            return
        assert status.startswith("HTTP/1.1 101"), status
        assert "sec-websocket-extensions" not in headers, headers["sec-websocket-extensions"]
        peer = Peer(sock, None, rest)
        peer.send(TEXT, b"still works")
        peer.expect(("text", b"still works"))
        peer.finish()


def test_declined_offer_then_valid_offer(connect: Connect) -> None:
    """An invalid offer followed by a valid one: the valid one may be chosen,
    and then compression works."""
    peer = connect(extensions="permessage-deflate; foo=bar, permessage-deflate")
    if peer.extension is not None:
        check_answer("permessage-deflate", peer.extension)
        round_trip(peer, "text", 3000)
    peer.finish()


def test_deflate_helper_round_trip() -> None:
    """Our own compressor and inflater agree (the suite's ground truth)."""
    out, into = Deflate(10), Deflate(10)
    for _ in range(3):
        data = os.urandom(100) * 50
        assert into.decompress(out.compress(data)) == data
