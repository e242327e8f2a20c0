""":class:`RoomService` (the base class of a room's logic) and how a
service's callbacks are found."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core.messages import Message
from .._handler import Maybe
from .._io.dispatch import class_hooks, default_hook
from ._values import ClientId

if TYPE_CHECKING:
    from ._context import RoomContext


class RoomService:
    """Base class for a room's logic: one instance per room, made with
    ``(room_id, ctx)`` when its first client joins.

    Override the callbacks you need; each may be ``def`` or ``async def``.
    A room's callbacks run one at a time, in order (an ``async`` one holds
    the room until it returns), so ``self`` needs no lock. ``ctx`` (also
    ``self.ctx``) sends, sets the room's timer and closes clients.

    Any callable ``(room_id, ctx) -> object with some of these methods``
    works as a service too.
    """

    room_id: str
    ctx: RoomContext

    def __init__(self, room_id: str, ctx: RoomContext) -> None:
        self.room_id = room_id
        self.ctx = ctx

    @default_hook
    def on_join(self, client: ClientId, ctx: RoomContext) -> Maybe:
        """A client joined; it is in ``ctx.clients`` and can be sent to."""

    @default_hook
    def on_message(self, client: ClientId, msg: Message, ctx: RoomContext) -> Maybe:
        """A client sent a message: a ``str`` for text, ``bytes`` for binary
        (both are :class:`wskit.Message`; ``msg.is_text`` tells which)."""

    @default_hook
    def on_leave(self, client: ClientId, ctx: RoomContext) -> Maybe:
        """A client left (it is no longer in ``ctx.clients``);
        ``client.close_code`` and ``client.close_reason`` say how."""

    @default_hook
    def on_timer(self, ctx: RoomContext) -> Maybe:
        """The timer set with ``ctx.set_timer(delay_s)`` fired."""

    @default_hook
    def on_persist(self, ctx: RoomContext) -> Maybe:
        """Save what must outlive this room object: called when the room is
        disposed of (grace over, shutdown) if it changed since the last
        call, and in a cluster also in the room's turn on the node that owns
        it, at most once per ``Settings.backplane_lease / 5`` seconds while
        it changes. A room re-created on another node after its owner died
        starts with a new service: load the state in ``__init__``."""


CALLBACKS = ("on_join", "on_message", "on_leave", "on_timer", "on_persist")


def callbacks_of(service: object) -> dict[str, Callable[..., Any] | None]:
    """The callbacks a service really has: a RoomService's base defaults,
    which do nothing, are skipped (resolved once per class, by the same rule
    as a handler's hooks)."""
    names, based = class_hooks(type(service), CALLBACKS)
    if not based:
        names = tuple(n for n in CALLBACKS if callable(getattr(service, n, None)))
    return {n: getattr(service, n) if n in names else None for n in CALLBACKS}
