"""Rooms: Stateroom-style stateful rooms on one WebSocket port.

::

    class SharedCounter(wskit.RoomService):
        def __init__(self, room_id, ctx):
            super().__init__(room_id, ctx)
            self.value = 0

        def on_message(self, client, msg, ctx):
            self.value += 1 if msg == "increment" else -1
            ctx.send(wskit.Everyone, f"new value: {self.value}")

    wskit.listen("127.0.0.1:3012", wskit.Rooms(SharedCounter))

Theory of operation
-------------------

:class:`Rooms` is a :class:`wskit.Factory`. Each connection gets a small
handler (``_Member``) that picks its room from the request path in
``on_request`` (``/ws/{room}``, ``/ws`` for the default room), joins it in
``on_open``, forwards each message in ``on_message`` and leaves in
``on_close``. ``GET /status`` and ``GET /rooms`` are answered as plain HTTP
on the same port, and an optional page on ``/``.

One room, one service object, one lock. A room's callbacks (``on_join``,
``on_message``, ``on_leave``, ``on_timer``) run one at a time, in the order
their events arrived, whatever the number of clients: a room's state needs no
lock of its own. The lock is a ``trio.Lock`` (FIFO) with a fast path: when
the room is free, a ``def`` callback runs inline in the connection's task
(no task switch, ~0.15 µs of overhead per message, measured against ~5 µs
for a room task fed by a memory channel); an ``async def`` callback holds
the room until it returns, and the connections waiting for the room stop
reading meanwhile, so TCP pushes back on their peers. Timers and
slow-client evictions run in tasks of the WebSocket's nursery and wait for
the room like everyone else.

A room is created when its first client joins and disposed of when its last
client has left and ``grace`` seconds passed without a new one (a client
that reconnects after a network blip finds the room, and its state, as it
left them). At shutdown, rooms are disposed of as soon as their clients
have left, without grace, and pending timers are cancelled.

Slow consumers: a message for a client whose outgoing queue holds
``max_client_queue`` bytes or more (what the kernel has not taken yet) is
not queued. With ``slow_client="disconnect"`` (the default) the client is
closed with 1008 and leaves the room at once (``on_leave`` sees
``client.close_code == 1008`` and the reason); with ``"drop"`` it misses
that message, which is counted (``client.dropped``, ``ctx.stats.dropped``,
``GET /rooms``). Either way one slow client costs at most
``max_client_queue`` bytes plus one message, and never stalls the room.
A broadcast encodes its frame once for every plain server connection.

Logging (logger ``wskit.rooms``): DEBUG for rooms created and disposed and
clients joining and leaving, WARNING for slow clients, ERROR (with the
traceback) for exceptions raised by ``on_timer`` and by an ``on_leave``
that follows an eviction. Exceptions raised by ``on_join``,
``on_message`` and ``on_leave`` otherwise propagate like any handler's:
logged on ``wskit.server``, and that one client is closed with 1011.

In a cluster (``Settings.backplane``), each room lives on one node, its
owner, and clients on other nodes join it remotely: see ``_cluster``.

Layout
------

- ``_service``: :class:`RoomService`, :class:`ClientId`, :class:`RoomStats`;
- ``_context``: :class:`RoomContext`, what callbacks act through;
- ``_member``: the handler of one connection (``Member``) and its states;
- ``_room``: one room (``Room``): serialized callbacks, membership, grace,
  timer, delivery and the slow-client policy, counters;
- ``_http``: ``GET /status``, ``GET /rooms`` and the page;
- ``_factory``: :class:`Rooms`, the factory: options, routing, joining;
- ``_cluster``: rooms across the nodes of a cluster (owners, proxies, leases);
"""

from ._context import RoomContext
from ._factory import Rooms, SlowClientPolicy
from ._service import RoomService
from ._values import ClientId, RoomStats

__all__ = ["ClientId", "RoomContext", "RoomService", "RoomStats", "Rooms", "SlowClientPolicy"]
