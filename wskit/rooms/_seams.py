"""Every place the rooms package reaches into another module's internals.

The rest of the package goes through these names and nothing private
elsewhere, so each can be replaced by a public seam (a connection registry,
a thread portal) here, in one place. The reach-ins, as they are today:

WebSocket and Sender (``wskit._websocket``, ``wskit._sender``):

- :func:`websocket_of`: ``Sender._ws``, the WebSocket serving a connection
  (``Rooms.server_connected`` binds to it; ``Rooms._route`` checks its rooms);
- :func:`nursery_of`: ``WebSocket._require_nursery()``, where a room's tasks
  run (timers, grace periods, the ``on_leave`` of an evicted client);
- :func:`in_trio_thread`: ``WebSocket._in_trio_thread()`` (thread portal:
  ``RoomContext.send`` delivers inline in the Trio thread);
- :func:`call_in_trio`: ``WebSocket._call(fn, *args)`` (thread portal:
  ``RoomContext.set_timer`` / ``cancel_timer`` from any thread);
- :func:`connections_of`: ``WebSocket._open``, the connection registry (open
  connections by id), read by ``Room._send`` and ``Room.queued_bytes``.

Comms (``wskit._comms``):

- :func:`groups_of`: ``Comms._groups``, the WebSocket's room namespace
  (``comms.room(id)`` finds a :class:`Room` there): read by
  ``Rooms._route``, written by ``Rooms._join`` and ``Rooms._forget``;
- :func:`select`, :func:`missing_error`, :data:`Recipient`,
  :data:`Sendable`: the hub's recipient helpers, and :func:`send_shared`
  (queue a frame encoded once for many connections).

The driver's connection (``wskit._connection``): :class:`Connection` and
:class:`ConnState`, used by ``Room._send``, ``Room._slow``, ``Room.evict``
and ``Room.queued_bytes`` as ``conn.state is ConnState.OPEN``,
``conn.queued_bytes``, ``conn.write_pending()`` and ``conn.close(code, reason)``.

Helpers imported directly elsewhere in the package (functions, no state):
``wskit._sender.to_message``, ``wskit._core.protocol.check_close``,
``wskit._handler.Maybe``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._comms import Group, Recipient, Sendable, missing_error, select, send_shared
from .._connection import Connection, ConnState

if TYPE_CHECKING:
    import trio

    from .._sender import Sender
    from .._websocket import WebSocket

__all__ = [
    "ConnState", "Connection", "Recipient", "Sendable", "call_in_trio", "connections_of",
    "groups_of", "in_trio_thread", "missing_error", "nursery_of", "select", "send_shared",
    "websocket_of",
]


def websocket_of(out: Sender) -> WebSocket:
    """The WebSocket serving ``out``'s connection (``Sender._ws``)."""
    return out._ws


def nursery_of(ws: WebSocket) -> trio.Nursery:
    """The WebSocket's nursery (``WebSocket._require_nursery()``); raises
    ``Error(USAGE)`` outside ``async with``."""
    return ws._require_nursery()


def in_trio_thread(ws: WebSocket) -> bool:
    """Whether this is the WebSocket's Trio thread (``WebSocket._in_trio_thread()``)."""
    return ws._in_trio_thread()


def call_in_trio(ws: WebSocket, fn: Callable[..., Any], *args: Any) -> None:
    """``fn(*args)`` now in the Trio thread, else soon in it, in order
    (``WebSocket._call``)."""
    ws._call(fn, *args)


def connections_of(ws: WebSocket) -> dict[int, Connection]:
    """The open connections by id (``WebSocket._open``; the live dict)."""
    return ws._open


def groups_of(ws: WebSocket) -> dict[str, Group]:
    """The WebSocket's rooms by id, as ``ws.comms`` finds them (``Comms._groups``;
    the live dict)."""
    return ws.comms._groups
