"""The read loop of an open connection: each read's events, dispatched.

Theory of operation. One read brings a batch of events from the core. The
messages among them go to ``on_message`` right here, synchronously, with no
coroutine per message (:func:`_inline`): for a sync hook that is the whole
story, and the replies it sends wait in the core (the transport is
*corked*) until the batch is done, then leave in one write. Anything that
must be awaited — a control event (ping, pong, close, failure, end of
stream), an ``async`` hook's result, a hook that raised, a message while an
``async`` hook still holds the turn — hands the rest of the batch to
:func:`_awaiting`, which awaits it *uncorked* (what is queued goes out
first, and sends made meanwhile are written as they happen), then goes back
to the inline loop for what follows.

This is the per-message path of every server: each line here is paid once
per message, so it avoids calls, coroutines and Enum lookups that are not
needed (measured with callgrind, see BENCHMARKS.md).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import Protocol

from trio.lowlevel import checkpoint

from .._core.messages import BinaryMessage, TextMessage
from .._core.protocol import ConnectionCore, CoreEvent, CoreState
from .dispatch import Dispatcher, hook_name
from .phase import Phase
from .transport import Transport

__all__ = ["Reader", "read_loop"]

# Python 3.11 looks a member up on its Enum class through EnumType.__getattr__,
# four times the cost of a global: the loop reads these.
_OPEN = Phase.OPEN
_CLOSED = CoreState.CLOSED
_FAILED = CoreState.FAILED
#: Never appended to: what the loop holds while it waits for the next read.
_NO_EVENTS: list[CoreEvent] = []


class Reader(Protocol):
    """The open connection whose reads are dispatched (``driver.Connection``)."""

    core: ConnectionCore | None
    transport: Transport | None
    dispatch: Dispatcher | None
    phase: Phase
    messages_in: int
    bytes_in: int

    async def handle_event(self, event: CoreEvent) -> None:
        """Handle one event that is not a message (ping, pong, close, ...)."""


async def read_loop(conn: Reader) -> None:
    """Read and dispatch until the core is closed (or failed)."""
    core, transport = conn.core, conn.transport
    assert core is not None and transport is not None
    receive = core.receive_data
    plain = transport.fd is not None
    events = core.pending_events()
    while True:
        if events:
            transport.corked = True
            stop = _inline(conn, events, 0)
            if stop is not None:
                try:
                    await _awaiting(conn, transport, events, *stop)
                finally:
                    transport.corked = False
            transport.corked = False
            transport.write_now()  # the replies to this read, in one write
            events = _NO_EVENTS  # let a large message go before the next one is read
        elif core.has_output:
            transport.write_now()
        state = core.state
        if state is _CLOSED or state is _FAILED:
            return
        if core.payload_sink is not None:
            # The rest of a large binary frame: read straight into it.
            into = await transport.read_into()
            conn.bytes_in += len(into)
            events = receive(into)
            continue
        if plain:
            # Transport.read(), unrolled: one coroutine less per message.
            await checkpoint()
            data = transport.read_ready()
            if data is None:
                data = await transport.read_wait()
        else:
            data = await transport.read()
        conn.bytes_in += len(data)
        events = receive(data)


def _inline(conn: Reader, events: list[CoreEvent],
            start: int) -> tuple[int, Awaitable[None] | None] | None:
    """Dispatch ``events[start:]`` without awaiting, as far as that goes.

    ``None``: all done. ``(i, pending)``: event ``i`` needs an await: its
    hook ran and ``pending`` must be awaited (its result, or the report of
    what it raised); or, with ``pending`` None, event ``i`` is untouched.
    """
    dispatch = conn.dispatch
    assert dispatch is not None
    on_message = dispatch.hooks.on_message
    for i in range(start, len(events)):
        event = events[i]
        cls = event.__class__
        if cls is not TextMessage and cls is not BinaryMessage:
            return i, None
        if on_message is None or conn.phase is not _OPEN:
            conn.messages_in += 1
            continue
        if dispatch.awaiting is not None:  # an async hook holds the turn
            return i, None
        conn.messages_in += 1
        try:
            result = on_message(event)
        except Exception as exc:
            return i, dispatch.failed(hook_name(on_message), exc)
        if result is not None and inspect.isawaitable(result):
            return i, dispatch.await_hook(hook_name(on_message), result)
    return None


async def _awaiting(conn: Reader, transport: Transport, events: list[CoreEvent], i: int,
                    pending: Awaitable[None] | None) -> None:
    """The rest of a batch, from the event ``i`` that needs an await."""
    dispatch = conn.dispatch
    assert dispatch is not None
    while True:
        transport.corked = False
        transport.write_now()
        try:
            if pending is not None:
                await pending
            else:
                event = events[i]
                cls = event.__class__
                if cls is TextMessage or cls is BinaryMessage:
                    # A message while an async hook holds the turn: wait for it.
                    conn.messages_in += 1
                    on_message = dispatch.hooks.on_message
                    if on_message is not None and conn.phase is _OPEN:
                        await dispatch.call(on_message, event)
                else:
                    await conn.handle_event(event)
        finally:
            transport.corked = True
        stop = _inline(conn, events, i + 1)
        if stop is None:
            return
        i, pending = stop
