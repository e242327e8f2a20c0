"""Shared counter: Stateroom's counter service, as a wskit room.

Shows ``wskit.RoomService`` and ``wskit.Rooms``: one service object per room
holds the state (a number), every client of the room can change it, and
every change is broadcast to the whole room with ``ctx.send(wskit.Everyone,
…)``. The room's callbacks run one at a time, so ``self.value`` needs no lock.

Connect to ``ws://127.0.0.1:3012/ws/{room}`` (``/ws`` is the room
``default``); send ``increment`` or ``decrement``; everyone in that room
sees ``new value: N``. Another room has its own counter.

Policy choices:
- A client that joins is told the current value at once (Stateroom's
  counter waits for the next change; a page that draws the number wants it
  right away).
- Any other message is answered, to its sender only, with a short usage
  line; the value does not change (Stateroom ignores them silently).
- An empty room keeps its value for ``--grace`` seconds (default 10), so a
  client that reconnects after a network blip finds it; then it is
  disposed of and a new room starts from 0.
- Defaults of ``wskit.Rooms`` otherwise: a client that does not read fast
  enough (256 KiB waiting) is disconnected with 1008; ``GET /status`` and
  ``GET /rooms`` answer health and room counters.
- Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001 and exits 0.

    python examples/shared_counter.py --port 3012
    wskit serve examples.shared_counter:SharedCounter --rooms   # the same, from the CLI
"""

from __future__ import annotations

import argparse
import logging

import wskit


class SharedCounter(wskit.RoomService):
    """One counter per room."""

    def __init__(self, room_id: str, ctx: wskit.RoomContext) -> None:
        super().__init__(room_id, ctx)
        self.value = 0

    def on_join(self, client: wskit.ClientId, ctx: wskit.RoomContext) -> None:
        ctx.send(client, f"new value: {self.value}")

    def on_message(self, client: wskit.ClientId, msg: wskit.Message,
                   ctx: wskit.RoomContext) -> None:
        if msg == "increment":
            self.value += 1
        elif msg == "decrement":
            self.value -= 1
        else:
            ctx.send(client, "send 'increment' or 'decrement'")
            return
        ctx.send(wskit.Everyone, f"new value: {self.value}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Stateroom's shared counter, in rooms")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="seconds an empty room keeps its value (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    wskit.listen((args.host, args.port), wskit.Rooms(SharedCounter, grace=args.grace))


if __name__ == "__main__":
    main()
