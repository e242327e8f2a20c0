"""The one error type: immutable values that name their connection."""

from __future__ import annotations

import pickle

import pytest

import wskit
from wskit.testing import ConnectionClosed


def test_error_is_immutable_and_built_with_its_connection() -> None:
    err = wskit.Error("boom", wskit.ErrorKind.QUEUE, connection_id=7)
    with pytest.raises(AttributeError, match="immutable"):
        err.connection_id = 8  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        err.kind = wskit.ErrorKind.IO  # type: ignore[misc]
    assert (err.message, err.kind, err.connection_id) == ("boom", wskit.ErrorKind.QUEUE, 7)


def test_for_connection_copies_and_keeps_the_cause() -> None:
    cause = ValueError("inner")
    err = wskit.Error("outer", wskit.ErrorKind.CUSTOM, status=None)
    err.__cause__ = cause
    named = err.for_connection(3)
    assert named is not err and named.connection_id == 3 and err.connection_id is None
    assert named.__cause__ is cause and named.kind is wskit.ErrorKind.CUSTOM
    assert named.for_connection(3) is named


def test_errors_pickle_with_every_field() -> None:
    err = wskit.Error("refused", wskit.ErrorKind.HTTP, status=403, connection_id=5)
    back = pickle.loads(pickle.dumps(err))
    assert (back.message, back.kind, back.status, back.connection_id) == (
        "refused", wskit.ErrorKind.HTTP, 403, 5)
    closed = pickle.loads(pickle.dumps(ConnectionClosed(1001, "bye")))
    assert isinstance(closed, ConnectionClosed) and (closed.code, closed.reason) == (1001, "bye")


def test_connection_closed_is_a_wskit_error() -> None:
    assert issubclass(ConnectionClosed, wskit.Error)
    assert ConnectionClosed(1000, "").kind is wskit.ErrorKind.IO


def _wrap() -> None:
    try:
        raise KeyError("k")
    except KeyError as exc:
        raise wskit.Error("wrapped", wskit.ErrorKind.CUSTOM) from exc


def test_raising_and_chaining_still_work() -> None:
    with pytest.raises(wskit.Error) as info:
        _wrap()
    assert isinstance(info.value.__cause__, KeyError)
    info.value.add_note("a note")  # Python's own fields stay writable
    assert info.value.__notes__ == ["a note"]
