"""The client side: a hand-made frame server against a wskit client.

The same Autobahn categories, mirrored: the server writes unmasked frames
(a masked one is itself a protocol error, RFC 6455 section 5.1), the wskit
client echoes messages, answers pings, echoes close frames, fails the
connection with the right code, and reports it through ``on_close`` and
``on_error``. After the closing handshake the client waits for the server
to close the TCP connection (section 7.1.1), so every script reads the
client's frames up to its end of stream.
"""

from __future__ import annotations

import dataclasses

import pytest

import wskit

from ._frames import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    close_payload,
    fragments,
    frame,
    message,
    parse_extension,
)
from ._peers import CLIENT_SETTINGS, ClientRun, ClientRunner, FrameServer, Script
from ._utf8 import INVALID, VALID

KINDS = {TEXT: "text", BINARY: "binary"}


def payload(opcode: int, length: int) -> bytes:
    if opcode == TEXT:
        return (b"client echo " * (length // 12 + 1))[:length]
    return (bytes(range(256)) * (length // 256 + 1))[:length]


def echo_case(frames: bytes, expected: list[tuple[object, ...]], *,
              chunk: int | None = None) -> Script:
    """A script: write ``frames``, expect ``expected`` back, then close normally."""

    async def script(server: FrameServer) -> None:
        await server.write(frames, chunk)
        await server.expect(*expected)
        await server.close(1000)
        await server.expect_close(1000)

    return script


def fail_case(frames: bytes, code: int, *before: tuple[object, ...],
              chunk: int | None = None) -> Script:
    """A script: write ``frames``; the client answers ``before`` then fails with ``code``."""

    async def script(server: FrameServer) -> None:
        await server.write(frames, chunk)
        await server.expect_close(code, *before)

    return script


def assert_normal(run: ClientRun, code: int = 1000) -> None:
    assert run.connect_error is None
    assert run.close_code == code
    assert run.errors == [], run.errors


def assert_failed(run: ClientRun, code: int, kind: wskit.ErrorKind) -> None:
    """on_close got the code wskit failed the connection with, on_error one error."""
    assert run.connect_error is None
    assert run.close_code == code, run.closes
    assert run.error_kinds() == [kind], run.errors


# -- framing (section 1) --------------------------------------------------------

LENGTHS = [0, 1, 125, 126, 127, 128, 65535, 65536, 2**20]


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
@pytest.mark.parametrize("length", LENGTHS)
async def test_echo(client_run: ClientRunner, opcode: int, length: int) -> None:
    data = payload(opcode, length)
    run = await client_run(echo_case(frame(opcode, data, masked=False),
                                     [(KINDS[opcode], data)]))
    assert_normal(run)
    assert run.messages == [data.decode() if opcode == TEXT else data]


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 128])
async def test_echo_written_byte_by_byte(client_run: ClientRunner, length: int) -> None:
    data = payload(TEXT, length)
    run = await client_run(echo_case(frame(TEXT, data, masked=False), [("text", data)],
                                     chunk=1))
    assert_normal(run)


async def test_frames_in_the_101_packet(client_run: ClientRunner) -> None:
    """Frames the server writes together with its 101 are not lost."""

    async def script(server: FrameServer) -> None:
        await server.expect(("text", b"early"), ("pong", b"p"))
        await server.close(1000)
        await server.expect_close(1000)

    run = await client_run(script, early=frame(TEXT, b"early", masked=False)
                           + frame(PING, b"p", masked=False))
    assert_normal(run)


async def test_masked_server_frame_fails(client_run: ClientRunner) -> None:
    """Section 5.1: "A client MUST close a connection if it detects a masked frame"."""
    run = await client_run(fail_case(frame(TEXT, b"masked", masked=True), 1002))
    assert_failed(run, 1002, wskit.ErrorKind.PROTOCOL)


@pytest.mark.parametrize(("length", "length_bytes"), [(125, 2), (126, 8), (0, 8)])
async def test_non_minimal_length_fails(client_run: ClientRunner, length: int,
                                        length_bytes: int) -> None:
    run = await client_run(fail_case(frame(BINARY, b"\x00" * length, masked=False,
                                           length_bytes=length_bytes), 1002))
    assert_failed(run, 1002, wskit.ErrorKind.PROTOCOL)


# -- pings (section 2) ----------------------------------------------------------

@pytest.mark.parametrize("data", [b"", b"Hello, world!", b"\x00\xff" * 4, b"\xfe" * 125])
async def test_ping_gets_pong(client_run: ClientRunner, data: bytes) -> None:
    run = await client_run(echo_case(frame(PING, data, masked=False), [("pong", data)]))
    assert_normal(run)
    assert run.pings == [data]


@pytest.mark.parametrize("opcode", [PING, PONG], ids=["ping", "pong"])
async def test_control_frame_over_125_fails(client_run: ClientRunner, opcode: int) -> None:
    run = await client_run(fail_case(frame(opcode, b"x" * 126, masked=False), 1002))
    assert_failed(run, 1002, wskit.ErrorKind.PROTOCOL)


async def test_unsolicited_pong_is_ignored(client_run: ClientRunner) -> None:
    run = await client_run(echo_case(frame(PONG, b"unsolicited", masked=False)
                                     + frame(TEXT, b"after", masked=False), [("text", b"after")]))
    assert_normal(run)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE], ids=["ping", "pong", "close"])
async def test_fragmented_control_frame_fails(client_run: ClientRunner, opcode: int) -> None:
    run = await client_run(fail_case(frame(opcode, b"", fin=False, masked=False), 1002))
    assert_failed(run, 1002, wskit.ErrorKind.PROTOCOL)


# -- reserved bits and opcodes (sections 3, 4) ---------------------------------

@pytest.mark.parametrize("rsv", range(1, 8))
@pytest.mark.parametrize("opcode", [TEXT, PING], ids=["text", "ping"])
async def test_reserved_bits_fail(client_run: ClientRunner, rsv: int, opcode: int) -> None:
    run = await client_run(fail_case(frame(opcode, b"rsv", rsv=rsv, masked=False), 1002))
    assert_failed(run, 1002, wskit.ErrorKind.PROTOCOL)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF],
                         ids=lambda op: f"{op:#x}")
async def test_reserved_opcode_fails(client_run: ClientRunner, opcode: int) -> None:
    run = await client_run(fail_case(frame(opcode, b"reserved", masked=False), 1002))
    assert_failed(run, 1002, wskit.ErrorKind.PROTOCOL)


# -- fragmentation (section 5) -------------------------------------------------

@pytest.mark.parametrize("size", [1, 2, 7, 125, 1000, 65536])
@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
async def test_fragmented_message(client_run: ClientRunner, size: int, opcode: int) -> None:
    data = payload(opcode, 100_000 if size > 100 else 500)
    run = await client_run(echo_case(message(opcode, fragments(data, size), masked=False),
                                     [(KINDS[opcode], data)]))
    assert_normal(run)


@pytest.mark.parametrize("gap", [1, 2, 3])
async def test_ping_between_fragments(client_run: ClientRunner, gap: int) -> None:
    pieces = [b"frag1", b"frag2", b"frag3", b"frag4"]
    frames = [frame(TEXT if i == 0 else CONT, p, fin=i == 3, masked=False)
              for i, p in enumerate(pieces)]
    frames.insert(gap, frame(PING, b"inside", masked=False))
    run = await client_run(echo_case(b"".join(frames),
                                     [("pong", b"inside"), ("text", b"".join(pieces))]))
    assert_normal(run)


@pytest.mark.parametrize("frames", [
    pytest.param(frame(CONT, b"no start", masked=False), id="continuation-first"),
    pytest.param(frame(TEXT, b"a", fin=False, masked=False) + frame(TEXT, b"b", masked=False),
                 id="text-inside-text"),
    pytest.param(frame(BINARY, b"a", fin=False, masked=False)
                 + frame(TEXT, b"b", fin=False, masked=False), id="text-inside-binary"),
])
async def test_bad_fragmentation_fails(client_run: ClientRunner, frames: bytes) -> None:
    run = await client_run(fail_case(frames, 1002))
    assert_failed(run, 1002, wskit.ErrorKind.PROTOCOL)


# -- UTF-8 (section 6) ---------------------------------------------------------

@pytest.mark.parametrize(("name", "data"), [(n, d) for n, d, _ in VALID[::2]])
async def test_valid_utf8_split_everywhere(client_run: ClientRunner, name: str,
                                           data: bytes) -> None:
    """Valid text, one byte per frame: echoed exactly."""
    run = await client_run(echo_case(message(TEXT, fragments(data, 1), masked=False),
                                     [("text", data)]))
    assert_normal(run)


@pytest.mark.parametrize(("name", "data"), [(n, d) for n, d, _ in INVALID[::3]])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "byte-frames"])
async def test_invalid_utf8_fails(client_run: ClientRunner, name: str, data: bytes,
                                  split: bool) -> None:
    frames = message(TEXT, fragments(data, 1 if split else len(data)), masked=False)
    run = await client_run(fail_case(frames, 1007))
    assert_failed(run, 1007, wskit.ErrorKind.ENCODING)


@pytest.mark.parametrize(("name", "data"), [(n, d) for n, d, _ in INVALID[::7]])
async def test_fail_fast_on_non_final_fragment(client_run: ClientRunner, name: str,
                                               data: bytes) -> None:
    run = await client_run(fail_case(frame(TEXT, data + b"x", fin=False, masked=False), 1007))
    assert_failed(run, 1007, wskit.ErrorKind.ENCODING)


# -- close handling (section 7) ------------------------------------------------

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
               3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
async def test_server_close_code_is_echoed(client_run: ClientRunner, code: int) -> None:
    """The client echoes the server's code and reports it in on_close."""

    async def script(server: FrameServer) -> None:
        await server.close(code, "server says bye")
        await server.expect_close(code)

    run = await client_run(script)
    assert run.closes == [(code, "server says bye")]
    assert run.errors == []


@pytest.mark.parametrize("code", INVALID_CODES)
async def test_invalid_server_close_code_fails(client_run: ClientRunner, code: int) -> None:
    run = await client_run(fail_case(frame(CLOSE, close_payload(code), masked=False), 1002))
    assert_failed(run, 1002, wskit.ErrorKind.PROTOCOL)


async def test_empty_close(client_run: ClientRunner) -> None:
    """No code in the server's close: reported as 1005, answered without 1005."""

    async def script(server: FrameServer) -> None:
        await server.send(CLOSE, b"")
        got = await server.rest()
        assert [e[:2] for e in got] in ([("close", None)], [("close", 1000)]), got

    run = await client_run(script)
    assert run.close_code == 1005
    assert run.errors == []


@pytest.mark.parametrize(("body", "code", "kind"), [
    pytest.param(b"\x03", 1002, wskit.ErrorKind.PROTOCOL, id="one-byte"),
    pytest.param(close_payload(1000, b"x" * 124), 1002, wskit.ErrorKind.PROTOCOL,
                 id="126-bytes"),
    pytest.param(close_payload(1000, b"\xce\xba\xff"), 1007, wskit.ErrorKind.ENCODING,
                 id="invalid-utf8-reason"),
])
async def test_bad_close_body_fails(client_run: ClientRunner, body: bytes, code: int,
                                    kind: wskit.ErrorKind) -> None:
    run = await client_run(fail_case(frame(CLOSE, body, masked=False), code))
    assert_failed(run, code, kind)


async def test_data_after_close_is_ignored(client_run: ClientRunner) -> None:
    """Section 7.1.4/5.5.1: nothing after the close frame is delivered or answered."""

    async def script(server: FrameServer) -> None:
        await server.write(frame(CLOSE, close_payload(1000), masked=False)
                           + frame(TEXT, b"late", masked=False)
                           + frame(PING, b"late", masked=False))
        await server.expect_close(1000)

    run = await client_run(script)
    assert_normal(run)
    assert run.messages == []


async def test_tcp_drop_without_close_is_1006(client_run: ClientRunner) -> None:
    """The stream ends without a close frame: on_close(1006)."""

    async def script(server: FrameServer) -> None:
        await server.send(TEXT, b"hello", masked=False)
        await server.expect(("text", b"hello"))
        await server.abort()

    run = await client_run(script)
    assert run.close_code == 1006


async def test_message_then_close_in_one_write(client_run: ClientRunner) -> None:
    """Autobahn 7.1.1, mirrored: message and close together; echo, then close."""
    run = await client_run(fail_case(frame(TEXT, b"Hello World!", masked=False)
                                     + frame(CLOSE, close_payload(1000), masked=False),
                                     1000, ("text", b"Hello World!")))
    assert run.close_code == 1000


# -- limits (section 9) -----------------------------------------------------------

SMALL = dataclasses.replace(CLIENT_SETTINGS, max_message_size=1024)


@pytest.mark.parametrize(("length", "size"), [(1024, 1024), (1024, 100)])
async def test_message_at_the_limit(client_run: ClientRunner, length: int, size: int) -> None:
    data = payload(BINARY, length)
    run = await client_run(echo_case(message(BINARY, fragments(data, size), masked=False),
                                     [("binary", data)]), settings=SMALL)
    assert_normal(run)


@pytest.mark.parametrize("frames", [
    pytest.param(frame(BINARY, b"x" * 1025, masked=False), id="whole"),
    pytest.param(message(BINARY, fragments(b"x" * 1025, 100), masked=False), id="fragments"),
    pytest.param(frame(BINARY, b"", declared=2**40, masked=False), id="header-only"),
])
async def test_message_over_the_limit(client_run: ClientRunner, frames: bytes) -> None:
    run = await client_run(fail_case(frames, 1009), settings=SMALL)
    assert_failed(run, 1009, wskit.ErrorKind.CAPACITY)


# -- permessage-deflate (sections 12, 13) ------------------------------------------

ANSWERS = [
    "permessage-deflate",
    "permessage-deflate; server_no_context_takeover",
    "permessage-deflate; client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=9",
    "permessage-deflate; client_max_window_bits=9",
    "permessage-deflate; client_max_window_bits=12; server_max_window_bits=10; "
    "client_no_context_takeover; server_no_context_takeover",
]


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("length", [16, 4096, 65536])
async def test_compressed_round_trips(client_run: ClientRunner, answer: str,
                                      length: int) -> None:
    """The client offered permessage-deflate; under each answer it inflates
    what we send and compresses its echoes within the agreed window."""

    async def script(server: FrameServer) -> None:
        offer = server.request.get("sec-websocket-extensions", [""])[0]
        assert parse_extension(offer)[0] == "permessage-deflate", offer
        for i in range(4):
            data = (b"%d compress me " % i) * (length // 14 + 1)
            data = data[:length]
            await server.write(server.compressed(TEXT, data))
            await server.expect(("text", data))
        await server.close(1000)
        await server.expect_close(1000)

    run = await client_run(script, extensions=answer)
    assert_normal(run)
