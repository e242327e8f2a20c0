"""Delivery: the one fan-out path, and a send from any thread.

A broadcast encodes its frame once for every plain server connection
(``Outlet.shares_frames``) and writes it straight to idle sockets; a
recipient that cannot take it (queue full, closing) has that reported to its
own ``on_error`` and the others are not held up. Everything that reaches
many connections — ``Sender.broadcast``, ``WebSocket.broadcaster()``,
``Comms.broadcast`` and rooms — goes through :func:`fan_out`.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._core.protocol import encode_frame
from .._errors import Error
from .._io.outlet import Outlet, byte_size
from .._io.portal import Portal

__all__ = ["fan_out", "send_from_anywhere", "send_shared"]


def send_shared(outlet: Outlet, data: str | bytes, frame: bytes | None) -> bytes | None:
    """Queue ``data`` on ``outlet``, reusing ``frame`` (encoded once for many);
    returns the frame to reuse for the next recipient. Raises ``Error(QUEUE)``
    as ``Outlet.send`` does."""
    if outlet.shares_frames:
        if frame is None:
            frame = encode_frame(data)
        outlet.send_frame(frame)
    else:
        outlet.send(data)
    return frame


def fan_out(outlets: Iterable[Outlet], data: str | bytes,
            exclude: frozenset[int] = frozenset()) -> None:
    """Send ``data`` to every open outlet but those in ``exclude``. Never raises
    for one recipient: its failure goes to its own ``on_error``."""
    frame: bytes | None = None
    for outlet in list(outlets):
        if exclude and outlet.connection_id in exclude:
            continue
        try:
            if outlet.shares_frames:  # open, plain: the per-recipient fast path
                if frame is None:
                    frame = encode_frame(data)
                outlet.send_frame(frame)
            elif outlet.is_open:
                outlet.send(data)
        except Error as err:
            outlet.report(err)


def send_from_anywhere(portal: Portal, outlet: Outlet, data: str | bytes) -> None:
    """Send on ``outlet`` from any thread: at once in the Trio thread; from
    another, checked there (the queue limit raises in the caller) and handed
    over in order."""
    if portal.in_trio_thread():
        outlet.send(data)
        return
    size = byte_size(data)
    outlet.check_queue(size)
    portal.run_soon(outlet.send_from_thread, data, size, size=size)
