"""Property-based fuzzing of the sans-I/O server core (hypothesis).

Random and mutated frame streams go into ``ConnectionCore`` (with and
without permessage-deflate, in random chunks), random and mutated upgrade
requests into ``ServerHandshake``. Whatever comes in:

- no exception other than ``wskit.Error`` escapes;
- the output stays bounded: the core only ever writes pongs, the echo of a
  close frame or its own close frame, so it never writes more than it read
  plus one close frame; messages are never larger than ``max_message_size``;
- what the core writes is valid server framing (checked with our own parser);
- the connection ends in a defined state: ``CoreState`` only moves forward
  (OPEN -> CLOSED or FAILED), the end of the stream leaves it CLOSED or
  FAILED, a failure queues a close frame with 1002, 1007 or 1009, and
  nothing is reported after the end.

``max_examples`` is bounded and the runs are derandomized, so the module
takes a few seconds and fails the same way every time.
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wskit
from wskit._core.handshake import ServerHandshake, make_extensions
from wskit._core.protocol import (
    CloseReceived,
    ConnectionCore,
    CoreEvent,
    CoreState,
    Failed,
    Lost,
)

from ._frames import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    FrameParser,
    Reassembler,
    close_payload,
    frame,
    upgrade_request,
    valid_close_code,
)

FUZZ = settings(max_examples=400, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LIMIT = 4096
#: A close frame of ours: 2 bytes header, 2 code, at most 123 reason.
CLOSE_FRAME_MAX = 127
FINAL = (CoreState.CLOSED, CoreState.FAILED)

# -- strategies ------------------------------------------------------------------

_OPCODES = st.one_of(
    st.sampled_from([TEXT, BINARY, CONT, PING, PONG, CLOSE]),
    st.integers(0, 15),
)
_PAYLOADS = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=60).map(lambda s: s.encode("utf-8")),
    st.sampled_from([b"\xce\xba\xe1\xbd", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]),
    st.just(b"z" * 300),
)


@st.composite
def frames(draw: st.DrawFn, *, masked: bool = True, deflate: bool = False) -> bytes:
    """One frame, usually well-formed, sometimes broken in one header field."""
    opcode = draw(_OPCODES)
    data = draw(_PAYLOADS)
    if opcode == CLOSE and draw(st.booleans()):
        data = close_payload(draw(st.integers(0, 65535)), draw(_PAYLOADS)[:123])
    rsv = 0
    if deflate and opcode in (TEXT, BINARY) and draw(st.booleans()):
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        rsv = 4
    if draw(st.integers(0, 9)) == 0:
        rsv = draw(st.integers(0, 7))
    length_bytes = draw(st.sampled_from([None] * 8 + [0, 2, 8]))
    declared = draw(st.sampled_from([None] * 12 + [0, 1, 126, 65536, 2**40, 2**63 + 1]))
    size = len(data) if declared is None else declared
    if (length_bytes == 0 and size > 125) or (length_bytes == 2 and size > 65535):
        length_bytes = None  # a length that does not fit that form
    return frame(opcode, data, fin=draw(st.sampled_from([True, True, True, False])), rsv=rsv,
                 masked=masked if draw(st.integers(0, 19)) else not masked,
                 length_bytes=length_bytes, declared=declared)


@st.composite
def streams(draw: st.DrawFn, *, masked: bool = True, deflate: bool = False) -> bytes:
    return b"".join(draw(st.lists(frames(masked=masked, deflate=deflate), max_size=10)))


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """``base`` with a few bit flips, insertions, deletions or a truncation."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            at = min(at, len(data) - 1)
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` cut at ``sizes`` (cycled); the rest in one piece."""
    out, i = [], 0
    for size in sizes:
        if i >= len(data):
            break
        out.append(data[i:i + size])
        i += size
    if i < len(data):
        out.append(data[i:])
    return out


CHUNKS = st.lists(st.integers(1, 64), max_size=20)

# -- the properties of the frame core ----------------------------------------------


def server_core(*, deflate: bool, limit: int | None = LIMIT) -> ConnectionCore:
    extensions = []
    if deflate:
        extensions = make_extensions("deflate", client=False, max_message_size=limit)
        assert extensions[0].accept("permessage-deflate") is not None
    return ConnectionCore(client=False, extensions=extensions, max_message_size=limit)


def run_core(core: ConnectionCore, pieces: list[bytes], *, client: bool = False,
             limit: int | None = LIMIT) -> None:
    """Feed ``pieces`` then the end of stream; check every property on the way."""
    read = sum(len(p) for p in pieces)
    written = b""
    events: list[CoreEvent] = []
    state = core.state
    for piece in [*pieces, None]:
        try:
            new = core.receive_data(piece)
        except wskit.Error:
            new = []  # allowed to raise, but only this
        events += new
        if any(isinstance(e, (CloseReceived, Failed)) for e in new):
            core.answer_close()  # what the Trio driver does once it reaches the event
        written += core.take_output()
        # Defined states, moving forward only.
        assert isinstance(core.state, CoreState)
        assert state is CoreState.OPEN or core.state is state, (state, core.state)
        state = core.state
        if state in FINAL:
            assert core.receive_data(b"\x88\x80\x00\x00\x00\x00") == [], "events after the end"
    assert core.state in FINAL, f"end of stream left the core {core.state}"

    # Bounded output: pongs and a close echo are never larger than what they
    # answer; our own close frame is at most one more.
    assert len(written) <= read + CLOSE_FRAME_MAX, (len(written), read)

    # The events: at most one ending event, and nothing after it.
    enders = [i for i, e in enumerate(events) if isinstance(e, (CloseReceived, Failed, Lost))]
    assert len(enders) == 1 and enders[0] == len(events) - 1, events
    for event in events:
        if isinstance(event, wskit.Message) and limit is not None:
            assert len(event) <= limit

    # What the core wrote is valid (unmasked, for a server) framing, with no
    # data frames: it only answers pings and closes.
    parser = FrameParser()
    parser.feed(written)
    reader = Reassembler(masked=client)
    sent = []
    while (f := parser.next()) is not None:
        sent += reader.add(f)
    assert not parser.buffer, "a partial frame was written"
    assert all(e[0] in ("pong", "close") for e in sent), sent
    last = events[-1]
    if isinstance(last, Failed):
        assert sent and sent[-1][0] == "close", sent
        assert sent[-1][1] in (1002, 1007, 1009), sent[-1]
        assert last.code == sent[-1][1]
        assert isinstance(last.error, wskit.Error)
    elif isinstance(last, CloseReceived):
        assert sent and sent[-1][0] == "close", "a close frame was not answered"
    else:
        assert not any(e[0] == "close" for e in sent), sent


@FUZZ
@given(data=st.binary(max_size=3000), sizes=CHUNKS)
def test_random_bytes(data: bytes, sizes: list[int]) -> None:
    run_core(server_core(deflate=False), chunked(data, sizes))


@FUZZ
@given(data=streams(), sizes=CHUNKS)
def test_random_frames(data: bytes, sizes: list[int]) -> None:
    run_core(server_core(deflate=False), chunked(data, sizes))


@FUZZ
@given(data=mutated(streams()), sizes=CHUNKS)
def test_mutated_frames(data: bytes, sizes: list[int]) -> None:
    run_core(server_core(deflate=False), chunked(data, sizes))


@FUZZ
@given(data=streams(deflate=True), sizes=CHUNKS)
def test_random_frames_with_deflate(data: bytes, sizes: list[int]) -> None:
    run_core(server_core(deflate=True), chunked(data, sizes))


@FUZZ
@given(data=mutated(streams(deflate=True)), sizes=CHUNKS)
def test_mutated_frames_with_deflate(data: bytes, sizes: list[int]) -> None:
    run_core(server_core(deflate=True), chunked(data, sizes))


@pytest.mark.slow
@settings(FUZZ, max_examples=4000)
@given(data=mutated(streams(deflate=True)), sizes=CHUNKS)
def test_mutated_frames_deep(data: bytes, sizes: list[int]) -> None:
    """The same, ten times longer (slow)."""
    run_core(server_core(deflate=True), chunked(data, sizes))


@FUZZ
@given(data=streams(), sizes=CHUNKS)
def test_random_frames_without_size_limit(data: bytes, sizes: list[int]) -> None:
    run_core(server_core(deflate=False, limit=None), chunked(data, sizes), limit=None)


@FUZZ
@given(data=mutated(streams(masked=False)), sizes=CHUNKS)
def test_client_core_mutated_frames(data: bytes, sizes: list[int]) -> None:
    """The mirror: server frames (unmasked) into a client core."""
    core = ConnectionCore(client=True, extensions=[], max_message_size=LIMIT)
    run_core(core, chunked(data, sizes), client=True)


# -- the small-message fast path decodes what wsproto decodes -------------------


def _describe(event: CoreEvent) -> tuple[object, ...]:
    if isinstance(event, wskit.Message):
        return (type(event).__name__, event.data)
    if isinstance(event, Failed):
        return ("failed", event.code, event.reason, str(event.error), event.error.kind)
    if isinstance(event, CloseReceived):
        return ("close", event.code, event.reason)
    if isinstance(event, Lost):
        return ("lost",)
    return (type(event).__name__, event.data)


def _transcript(core: ConnectionCore, pieces: list[bytes | None],
                client: bool) -> tuple[object, ...]:
    events = core.pending_events()
    for piece in pieces:
        events += core.receive_data(piece)
    core.answer_close()
    # What it wrote, read back (a client masks with a fresh key each time).
    parser = FrameParser()
    parser.feed(bytes(core.take_output()))
    reader = Reassembler(masked=client)
    written = []
    while (f := parser.next()) is not None:
        written += reader.add(f)
    return tuple(map(_describe, events)), core.state, tuple(written)


def same_as_wsproto(data: bytes, sizes: list[int], *, client: bool = False,
                    limit: int | None = LIMIT) -> None:
    """Fed in pieces, ``take_small`` reads the whole small messages; fed at
    once as the handshake's trailing bytes, wsproto reads everything (the
    fast path never sees trailing bytes). Same events, same reasons, same
    state, same frames written."""
    fast = ConnectionCore(client=client, extensions=[], max_message_size=limit)
    slow = ConnectionCore(client=client, extensions=[], max_message_size=limit,
                          trailing_data=data)
    assert (_transcript(fast, [*chunked(data, sizes), None], client)
            == _transcript(slow, [None], client))


BIG_CHUNKS = st.lists(st.integers(1, 700), max_size=12)


_OK = frame(TEXT, b"fine")
#: One frame of each kind the fast path must leave to wsproto, between two
#: it reads itself: wsproto must then refuse (or accept) it as it always did.
EDGES = {
    "non-minimal 2-byte length": frame(TEXT, b"abc", length_bytes=2),
    "non-minimal 8-byte length": frame(BINARY, b"abc", length_bytes=8),
    "8-byte length": frame(BINARY, b"x" * 65536),
    "2-byte length": frame(BINARY, b"x" * 65535),
    "2-byte length, text": frame(TEXT, "é".encode() * 100),
    "unmasked": frame(TEXT, b"abc", masked=False),
    "unmasked binary": frame(BINARY, b"abcdefgh", masked=False),
    "RSV1": frame(TEXT, b"abc", rsv=4),
    "RSV3": frame(BINARY, b"abc", rsv=1),
    "fragment": frame(TEXT, b"ab", fin=False) + frame(CONT, b"c"),
    "continuation alone": frame(CONT, b"c"),
    "invalid UTF-8": frame(TEXT, b"\xc0\xaf"),
    "UTF-8 cut short": frame(TEXT, b"\xce"),
    "surrogate": frame(TEXT, b"\xed\xa0\x80"),
    "ping": frame(PING, b"p"),
    "pong": frame(PONG, b"p"),
    "close": frame(CLOSE, close_payload(1000, b"bye")),
    "reserved opcode": frame(3, b"abc"),
    "empty text": frame(TEXT, b""),
    "empty binary": frame(BINARY, b""),
    "at the limit": frame(BINARY, b"x" * LIMIT),
    "over the limit": frame(BINARY, b"x" * (LIMIT + 1)),
    "lying length": frame(TEXT, b"abc", declared=2**40),
}


@pytest.mark.parametrize("edge", EDGES.values(), ids=EDGES.keys())
@pytest.mark.parametrize("cut", [None, 1, 2, 7])
def test_fast_path_edges(edge: bytes, cut: int | None) -> None:
    data = _OK + edge + _OK
    sizes = [] if cut is None else [len(_OK) + cut]  # cut inside the edge frame
    same_as_wsproto(data, sizes)
    same_as_wsproto(data, [len(data)])


@FUZZ
@given(data=streams(), sizes=BIG_CHUNKS)
def test_fast_path_same_as_wsproto(data: bytes, sizes: list[int]) -> None:
    same_as_wsproto(data, sizes)


@FUZZ
@given(data=mutated(streams()), sizes=BIG_CHUNKS)
def test_fast_path_same_as_wsproto_mutated(data: bytes, sizes: list[int]) -> None:
    same_as_wsproto(data, sizes)


@FUZZ
@given(data=mutated(streams(masked=False)), sizes=BIG_CHUNKS)
def test_fast_path_same_as_wsproto_client(data: bytes, sizes: list[int]) -> None:
    same_as_wsproto(data, sizes, client=True)


@FUZZ
@given(data=streams(), sizes=BIG_CHUNKS, limit=st.sampled_from([None, 0, 1, 125, 126, 300]))
def test_fast_path_same_as_wsproto_limits(data: bytes, sizes: list[int],
                                          limit: int | None) -> None:
    same_as_wsproto(data, sizes, limit=limit)


def test_every_close_code_exhaustively() -> None:
    """The core's verdict on each of the 65536 codes agrees with section 7.4."""
    wrong = []
    for code in range(65536):
        core = server_core(deflate=False)
        core.receive_data(frame(CLOSE, close_payload(code), key=b"\x00\x00\x00\x00"))
        core.answer_close()
        out = core.take_output()
        echoed = int.from_bytes(out[2:4], "big") if len(out) >= 4 else None
        if echoed != (code if valid_close_code(code) else 1002):
            wrong.append(code)
    assert wrong == [], f"{len(wrong)} codes handled against section 7.4: {wrong[:20]}"


# -- the opening handshake ---------------------------------------------------------

_EXT_PARAMS = st.sampled_from([
    "client_max_window_bits", "server_max_window_bits", "client_no_context_takeover",
    "server_no_context_takeover", "foo", "",
])
_EXT_VALUES = st.sampled_from([None, "9", "15", "8", "0", "16", "abc", "", '"10"', "-1",
                               "99999999999999999999", " 12 "])


@st.composite
def extension_offers(draw: st.DrawFn) -> str:
    offers = []
    for _ in range(draw(st.integers(1, 3))):
        parts = [draw(st.sampled_from(["permessage-deflate", "permessage-deflate",
                                       "x-webkit-deflate-frame", ""]))]
        for _ in range(draw(st.integers(0, 4))):
            name, value = draw(_EXT_PARAMS), draw(_EXT_VALUES)
            parts.append(name if value is None else f"{name}={value}")
        offers.append("; ".join(parts))
    return ", ".join(offers)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """An upgrade request with random extension offers and extra headers."""
    request, _ = upgrade_request("example.com", 80, extensions=draw(extension_offers()),
                                 key="dGhlIHNhbXBsZSBub25jZQ==")
    head = request[:-2]
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["Sec-WebSocket-Protocol", "Origin", "Connection",
                                     "Sec-WebSocket-Version", "Sec-WebSocket-Key", "X-Junk"]))
        value = draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
        head += f"{name}: {value}\r\n".encode()
    return head + b"\r\n"


def run_handshake(pieces: list[bytes]) -> None:
    hs = ServerHandshake(max_header_size=4096)
    read = sum(len(p) for p in pieces)
    try:
        request = None
        for piece in [*pieces, b""]:
            request = hs.receive_data(piece)
            if request is not None:
                break
        if request is None:
            return
        ServerHandshake.check_upgrade(request)
        head, enabled = ServerHandshake.accept(
            request, request.accept(), make_extensions("deflate", client=False,
                                                       max_message_size=LIMIT))
    except wskit.Error as err:
        status = err.status
        assert status in (None, 400, 413, 414, 426, 431), status
        return
    assert head.startswith(b"HTTP/1.1 101 ")
    assert len(head) <= 512 + read, "the 101 answer grew beyond the request"
    assert len(enabled) <= 1
    # The core built from the agreed extensions works.
    core = ConnectionCore(client=False, extensions=enabled, max_message_size=LIMIT)
    core.receive_data(frame(TEXT, b"hello"))
    assert core.state is CoreState.OPEN


@FUZZ
@given(data=st.binary(max_size=2000), sizes=CHUNKS)
def test_handshake_random_bytes(data: bytes, sizes: list[int]) -> None:
    run_handshake(chunked(data, sizes))


@FUZZ
@given(data=requests(), sizes=CHUNKS)
def test_handshake_random_offers(data: bytes, sizes: list[int]) -> None:
    """Random Sec-WebSocket-Extensions offers and headers: only wskit.Error."""
    run_handshake(chunked(data, sizes))


@FUZZ
@given(data=mutated(requests()), sizes=CHUNKS)
def test_handshake_mutated(data: bytes, sizes: list[int]) -> None:
    run_handshake(chunked(data, sizes))


@settings(max_examples=30, deadline=None, database=None, derandomize=True)
@given(size=st.integers(4097, 20000))
def test_handshake_head_too_large(size: int) -> None:
    """A head beyond max_header_size is refused, not buffered without end."""
    hs = ServerHandshake(max_header_size=4096)
    data = b"GET / HTTP/1.1\r\nX-Long: " + b"a" * size
    try:
        for i in range(0, len(data), 1000):
            assert hs.receive_data(data[i:i + 1000]) is None
    except wskit.Error as err:
        status = err.status
        assert status in (400, 431), status
    else:
        raise AssertionError("a head over max_header_size was accepted")
