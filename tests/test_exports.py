"""The public surface is exactly ``wskit.__all__``, and all of it is real."""

from __future__ import annotations

import pickle
import pkgutil
import traceback

import wskit


def test_all_names_exist_and_are_public() -> None:
    for name in wskit.__all__:
        assert hasattr(wskit, name), name
        assert not name.startswith("_") or name == "__version__"


def test_no_public_module_besides_the_package() -> None:
    modules = [m.name for m in pkgutil.walk_packages(wskit.__path__, "wskit.")]
    public = [m for m in modules if not any(p.startswith("_") for p in m.split(".")[1:])]
    # The optional public layers: rooms (wskit.rooms, whose names wskit also
    # exports), the Prometheus metrics (wskit.metrics, the 'metrics' extra)
    # and the test kit (wskit.testing).
    assert public == ["wskit.metrics", "wskit.rooms", "wskit.testing"]


def test_every_public_class_is_documented() -> None:
    for name in wskit.__all__:
        obj = getattr(wskit, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__doc__, f"wskit.{name} has no docstring"


def test_exported_objects_are_presented_as_wskit() -> None:
    # Defined in private modules, shown as wskit.Name (tracebacks, reprs).
    for name in wskit.__all__:
        obj = getattr(wskit, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "wskit", (name, obj.__module__)
            assert getattr(wskit, obj.__qualname__) is obj  # pickles by reference


def test_a_traceback_names_the_public_error() -> None:
    try:
        wskit.Message(42)  # type: ignore[arg-type]
    except wskit.Error as err:
        shown = "".join(traceback.format_exception(err))
    assert "wskit.Error: a Message holds str (text) or bytes (binary), not int" in shown
    assert "wskit._errors" not in shown
    assert pickle.loads(pickle.dumps(wskit.CloseCode.AWAY)) is wskit.CloseCode.AWAY
    assert pickle.loads(pickle.dumps(wskit.Settings(max_connections=5))).max_connections == 5


def test_contract_names_present() -> None:
    contract = {
        "listen", "connect", "WebSocket", "Handler", "Factory", "Sender", "Message",
        "CloseCode", "Handshake", "Request", "Response", "Error", "ErrorKind", "Settings",
    }
    assert contract <= set(wskit.__all__)
    assert [c.value for c in wskit.CloseCode] == [
        1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1015
    ]
    # ws-rs's kinds, plus USAGE: the caller's mistakes, apart from the peer's;
    # and BACKPLANE: a cluster's Redis unreachable.
    assert {k.name for k in wskit.ErrorKind} == {
        "INTERNAL", "CAPACITY", "PROTOCOL", "ENCODING", "IO", "HTTP", "SSL", "QUEUE",
        "CUSTOM", "TIMER", "USAGE", "BACKPLANE",
    }
