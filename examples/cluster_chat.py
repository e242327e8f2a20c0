"""A chat that runs on several nodes as one: rooms and direct messages across
processes (or hosts) that share one Redis.

Start Redis and two nodes, then connect to either node: clients of the same
room talk to each other whichever node they landed on, and ``/to ID text``
reaches client ``ID`` on any node::

    redis-server --port 6379 --save '' --appendonly no &
    python examples/cluster_chat.py --port 3012 --backplane redis://127.0.0.1:6379/0 &
    python examples/cluster_chat.py --port 3013 --backplane redis://127.0.0.1:6379/0 &
    python -m wskit client ws://127.0.0.1:3012/ws/lobby     # in one terminal
    python -m wskit client ws://127.0.0.1:3013/ws/lobby     # in another

The application code is the same as on one node: ``Settings(backplane=…)``
is the only change. Each room's service runs on one node (the first one a
client of the room joined through) and its callbacks see every member;
a client id tells which node holds it (``id >> 32``). If that node dies,
the room starts again, empty of history, on a node that is still alive.
Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001 and exits 0.
"""

from __future__ import annotations

import argparse
import collections

import wskit

HISTORY = 10


class Chat(wskit.RoomService):
    def __init__(self, room_id: str, ctx: wskit.RoomContext) -> None:
        super().__init__(room_id, ctx)
        self.history: collections.deque[str] = collections.deque(maxlen=HISTORY)

    def on_join(self, client: wskit.ClientId, ctx: wskit.RoomContext) -> None:
        ctx.send(client, f"welcome to {self.room_id}, you are {client} (node {client >> 32}); "
                         f"this room runs on node {ctx.comms.node}")
        for line in self.history:
            ctx.send(client, line)
        ctx.send(wskit.Except(client), f"{client} joined")

    def on_message(self, client: wskit.ClientId, msg: wskit.Message,
                   ctx: wskit.RoomContext) -> None:
        text = str(msg)
        if text.startswith("/to "):
            target, _, private = text[4:].partition(" ")
            try:  # any connection of the cluster, in this room or not
                ctx.comms.send(int(target), f"{client} (private): {private}")
            except (ValueError, wskit.Error) as err:
                ctx.send(client, f"not sent: {err}")
            return
        line = f"{client}: {text}"
        self.history.append(line)
        ctx.send(wskit.Everyone, line)

    def on_leave(self, client: wskit.ClientId, ctx: wskit.RoomContext) -> None:
        ctx.send(wskit.Everyone, f"{client} left")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--port", type=int, default=3012)
    parser.add_argument("--backplane", default="redis://127.0.0.1:6379/0",
                        help="the Redis every node shares (default %(default)s)")
    args = parser.parse_args()
    settings = wskit.Settings(backplane=args.backplane)
    wskit.listen(("127.0.0.1", args.port), wskit.Rooms(Chat, grace=30), settings=settings)


if __name__ == "__main__":
    main()
