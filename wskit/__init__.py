"""wskit: callback-style WebSocket servers and clients on Trio and wsproto.

Three ways in::

    wskit.listen("127.0.0.1:3012", lambda out: lambda msg: out.send(msg))
    wskit.connect("ws://127.0.0.1:3012", factory)
    class Server(wskit.Handler): ...

The guide and the API reference are the documentation site (``docs/``,
``mkdocs serve``); every public name is listed in ``__all__``.
"""

from ._api import connect, listen
from ._core.http import Handshake, Headers, Request, Response
from ._core.messages import BinaryMessage, CloseCode, Message, TextMessage
from ._errors import ConnectionClosed, Error, ErrorKind
from ._handler import Factory, Handler
from ._hub.comms import Comms, Everyone, Except, RoomComms
from ._io.outlet import Timeout
from ._router import Router
from ._sender import Sender
from ._settings import Reconnect, Settings
from ._websocket import WebSocket
from .rooms import ClientId, RoomContext, Rooms, RoomService, RoomStats

__version__ = "0.1.0"

__all__ = [
    "BinaryMessage",
    "ClientId",
    "CloseCode",
    "Comms",
    "ConnectionClosed",
    "Error",
    "ErrorKind",
    "Everyone",
    "Except",
    "Factory",
    "Handler",
    "Handshake",
    "Headers",
    "Message",
    "Reconnect",
    "Request",
    "Response",
    "RoomComms",
    "RoomContext",
    "RoomService",
    "RoomStats",
    "Rooms",
    "Router",
    "Sender",
    "Settings",
    "TextMessage",
    "Timeout",
    "WebSocket",
    "__version__",
    "connect",
    "listen",
]


def _present_as_wskit() -> None:
    # Public names say ``wskit.Error``, not ``wskit._errors.Error``, in
    # tracebacks, reprs and docs (trio does the same). Pickling still works:
    # every name is importable from ``wskit``.
    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, type) or callable(obj):
            module = getattr(obj, "__module__", None)
            if isinstance(module, str) and module.startswith("wskit."):
                obj.__module__ = "wskit"


_present_as_wskit()
