"""The public surface is exactly ``wskit.__all__``, and all of it is real."""

from __future__ import annotations

import importlib
import pkgutil

import wskit


def test_all_names_exist_and_are_public() -> None:
    for name in wskit.__all__:
        assert hasattr(wskit, name), name
        assert not name.startswith("_") or name == "__version__"


def test_no_public_module_besides_the_package() -> None:
    modules = [m.name for m in pkgutil.walk_packages(wskit.__path__, "wskit.")]
    public = [m for m in modules if not any(p.startswith("_") for p in m.split(".")[1:])]
    # The optional public layers: rooms (wskit.rooms, whose names wskit also
    # exports) and the test kit (wskit.testing).
    assert public == ["wskit.rooms", "wskit.testing"]


def test_every_public_class_is_documented() -> None:
    for name in wskit.__all__:
        obj = getattr(wskit, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__doc__, f"wskit.{name} has no docstring"


def test_exported_objects_come_from_private_modules() -> None:
    for name in wskit.__all__:
        obj = getattr(wskit, name)
        module = getattr(obj, "__module__", None)
        if module is not None and module.startswith("wskit"):
            assert any(part.startswith("_") for part in module.split(".")[1:]), (name, module)
            importlib.import_module(module)


def test_contract_names_present() -> None:
    contract = {
        "listen", "connect", "WebSocket", "Handler", "Factory", "Sender", "Message",
        "CloseCode", "Handshake", "Request", "Response", "Error", "ErrorKind", "Settings",
    }
    assert contract <= set(wskit.__all__)
    assert [c.value for c in wskit.CloseCode] == [
        1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1015
    ]
    # ws-rs's kinds, plus USAGE: the caller's mistakes, apart from the peer's.
    assert {k.name for k in wskit.ErrorKind} == {
        "INTERNAL", "CAPACITY", "PROTOCOL", "ENCODING", "IO", "HTTP", "SSL", "QUEUE",
        "CUSTOM", "TIMER", "USAGE",
    }
