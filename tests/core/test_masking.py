"""The masking XOR: the C accelerator and the Python fallback agree with
RFC 6455 section 5.3 written out byte by byte."""

from __future__ import annotations

import importlib.util
import os

import pytest

from wskit._core import masking


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
    assert masking._load() == (masking.apply_mask_python, "python")
    monkeypatch.setenv("WSKIT_NO_EXTENSIONS", "0")  # "0" is "not set"
    built = importlib.util.find_spec("wskit._core._mask") is not None
    assert masking._load()[1] == ("c" if built else "python")
