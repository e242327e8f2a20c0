"""The masking XOR: the C accelerator and the Python fallback agree with
RFC 6455 section 5.3 written out byte by byte."""

from __future__ import annotations

import importlib.util
import os
import socket

import pytest

from wskit._core import masking
from wskit._core.messages import BinaryMessage


def reference(data: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 2047, 2048, 2049, 65537]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("impl", [masking.apply_mask, masking.apply_mask_python],
                         ids=["in-use", "python"])
def test_masks_like_the_rfc(impl: object, size: int) -> None:
    assert callable(impl)
    data, mask = os.urandom(size), os.urandom(4)
    out = impl(data, mask)
    assert type(out) is bytes
    assert out == reference(data, mask)
    assert impl(out, mask) == data  # masking twice gives the data back
    assert impl(bytearray(data), mask) == out
    assert impl(memoryview(data), mask) == out


@pytest.mark.parametrize("impl", [masking.apply_mask, masking.apply_mask_python],
                         ids=["in-use", "python"])
def test_mask_must_be_four_bytes(impl: object) -> None:
    assert callable(impl)
    with pytest.raises(ValueError, match="4 bytes"):
        impl(b"data", b"abc")


def test_implementation_is_named() -> None:
    assert masking.IMPLEMENTATION in ("c", "python")
    expected = "python" if os.environ.get("WSKIT_NO_EXTENSIONS", "") not in ("", "0") else None
    if expected is not None:
        assert expected == masking.IMPLEMENTATION
        assert masking.apply_mask is masking.apply_mask_python


def test_the_environment_variable_forces_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSKIT_NO_EXTENSIONS", "1")
    assert masking._load() == (masking.apply_mask_python, masking.mask_frame_python,
                               masking.MessageBufferPython, "python")
    monkeypatch.setenv("WSKIT_NO_EXTENSIONS", "0")  # "0" is "not set"
    built = importlib.util.find_spec("wskit._core._mask") is not None
    assert masking._load()[3] == ("c" if built else "python")
    if built:
        from wskit._core import _mask  # type: ignore[attr-defined]

        assert masking._load()[:3] == (_mask.apply_mask, _mask.mask_frame, _mask.MessageBuffer)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("impl", [masking.mask_frame, masking.mask_frame_python],
                         ids=["in-use", "python"])
def test_mask_frame_is_header_key_and_masked_payload(impl: object, size: int) -> None:
    assert callable(impl)
    header, data, mask = b"\x82\x7e\x01\x00", os.urandom(size), os.urandom(4)
    out = impl(header, data, mask)
    assert type(out) is bytes
    assert out == header + mask + reference(data, mask)
    assert impl(bytearray(header), memoryview(data), mask) == out
    with pytest.raises(ValueError, match="4 bytes"):
        impl(header, data, b"abcde")


BUFFERS = [masking.MessageBuffer, masking.MessageBufferPython]


@pytest.mark.parametrize("cls", [bytes, BinaryMessage])
@pytest.mark.parametrize("impl", BUFFERS, ids=["in-use", "python"])
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "copied"])
def test_message_buffer_unmasks_pieces_into_one_message(impl: object, cls: type[bytes],
                                                        masked: bool) -> None:
    assert callable(impl)
    data, mask = os.urandom(70_001), os.urandom(4)
    expected = reference(data, mask) if masked else data
    buffer = impl(cls, len(data), mask if masked else None)
    offset = 0
    # Pieces of every length mod 4 (the key must carry on mid-key), as
    # bytes, memoryviews and bytearrays.
    for i, size in enumerate([1, 2, 3, 5, 6, 7, 4, 65_536, 4_437]):
        assert buffer.missing == len(data) - offset
        piece = data[offset:offset + size]
        kind = (bytes, memoryview, bytearray)[i % 3]
        assert buffer.add(kind(piece)) == len(data) - offset - size
        offset += size
    assert offset == len(data) and buffer.missing == 0
    message = buffer.finish()
    assert type(message) is cls
    assert message == expected
    assert hash(message) == hash(bytes(expected))  # the hash is computed, not stale
    with pytest.raises(ValueError, match="already finished"):
        buffer.finish()
    with pytest.raises(ValueError, match="already finished"):
        buffer.add(b"")


@pytest.mark.parametrize("impl", BUFFERS, ids=["in-use", "python"])
def test_message_buffer_refuses_too_much_too_little_and_bad_masks(impl: object) -> None:
    assert callable(impl)
    buffer = impl(BinaryMessage, 3, b"abcd")
    with pytest.raises(ValueError, match="4 bytes added, 3 missing"):
        buffer.add(b"wxyz")
    buffer.add(b"xy")
    with pytest.raises(ValueError, match="1 bytes still missing"):
        buffer.finish()
    assert buffer.add(b"z") == 0
    assert buffer.finish() == reference(b"xyz", b"abcd")
    empty = impl(BinaryMessage, 0, b"abcd")
    assert empty.missing == 0 and empty.finish() == b""
    with pytest.raises(ValueError, match="4 bytes"):
        impl(bytes, 3, b"abc")
    with pytest.raises(ValueError, match=">= 0"):
        impl(bytes, -1, None)


def test_c_message_buffer_takes_only_bytes_layouts() -> None:
    if masking.IMPLEMENTATION != "c":
        pytest.skip("the C accelerator is not in use")
    with pytest.raises(TypeError, match="bytes or a subclass adding no fields"):
        masking.MessageBuffer(bytearray, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("impl", BUFFERS, ids=["in-use", "python"])
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "copied"])
def test_message_buffer_reads_from_a_socket_and_unmasks_in_place(impl: object,
                                                                  masked: bool) -> None:
    assert callable(impl)
    data, mask = os.urandom(100_003), os.urandom(4)
    wire = reference(data, mask) if masked else data
    a, b = socket.socketpair()
    with a, b:
        b.setblocking(False)
        buffer = impl(BinaryMessage, len(data), mask if masked else None)
        with pytest.raises(BlockingIOError):  # nothing there yet: as os.read says
            buffer.read_from(b.fileno(), 10)
        a.sendall(wire[:5] + wire[5:7])  # a piece that ends mid-key
        assert buffer.read_from(b.fileno(), 3) == 3  # at most what was asked
        assert buffer.read_from(b.fileno(), 1000) == 4
        assert buffer.add(wire[7:10]) == len(data) - 10  # add() and reads mix
        a.sendall(wire[10:] + b"next frame")
        got = 10
        while got < len(data):
            got += buffer.read_from(b.fileno(), 65_536)
        assert buffer.missing == 0
        assert buffer.read_from(b.fileno(), 100) == 0  # nothing missing: nothing read
        message = buffer.finish()
        assert type(message) is BinaryMessage and message == data
        assert b.recv(100) == b"next frame"  # not one byte past the payload was read
        with pytest.raises(ValueError, match="already finished"):
            buffer.read_from(b.fileno(), 1)
        a.close()
        rest = impl(bytes, 5, None)
        assert rest.read_from(b.fileno(), 5) == 0  # end of stream
        assert rest.missing == 5
