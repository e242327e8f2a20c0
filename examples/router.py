"""Router: different handlers on different paths, with ``wskit.Router`` (ws-rs's router).

Shows every kind of factory behind one router, and path parameters:

- ``/``            a plain-text index, served by a routed handler's ``on_request``;
- ``/echo``        an echo closure;
- ``/rooms/{name}`` a ``Handler`` subclass: a chat room per name (messages go
                   to everyone in the same room), ``name`` read with
                   ``wskit.Router.params(self.out)``;
- ``/count``       a ``wskit.Factory`` that counts its live connections
                   (``connection_lost``);
- anything else    ``404 Not Found``, before any upgrade.

Policy choices:
- Room names are path segments, percent-decoded (``/rooms/tea%20time`` is
  the room ``tea time``); at most 32 characters, longer names get 404.
- Room state is a module-level dict, without locks: every handler runs in
  the WebSocket's Trio thread, one event at a time.
- Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001 and exits 0.

The module-level ``router`` can also be served with the command line::

    python examples/router.py --port 3012
    wskit serve examples.router:router --port 3012
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

import wskit

#: Members of each room, by room name.
rooms: dict[str, set[Room]] = {}

router = wskit.Router()


@router.route("/")
class Index(wskit.Handler):
    def on_request(self, request: wskit.Request) -> wskit.Response:
        lines = [f"{pattern}" for pattern in router.patterns]
        return wskit.Response(200, "WebSocket routes:\n" + "\n".join(lines) + "\n")


@router.route("/echo")
def echo(out: wskit.Sender) -> Callable[[wskit.Message], None]:
    return out.send


@router.route("/rooms/{name}")
class Room(wskit.Handler):
    def on_request(self, request: wskit.Request) -> wskit.Response | None:
        if len(wskit.Router.params(self.out)["name"]) > 32:
            return request.reject(404, "no such room\n")
        return None

    def on_open(self, handshake: wskit.Handshake) -> None:
        self.room = wskit.Router.params(self.out)["name"]
        members = rooms.setdefault(self.room, set())
        members.add(self)
        self.out.send(f"joined {self.room} ({len(members)} here)")

    def on_message(self, msg: wskit.Message) -> None:
        for member in rooms.get(self.room, ()):
            member.out.send(f"{self.room}| {msg}")

    def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
        members = rooms.get(self.room, set())
        members.discard(self)
        if not members:
            rooms.pop(self.room, None)


class Counter(wskit.Factory):
    """Tells each newcomer how many ``/count`` connections are open."""

    def __init__(self) -> None:
        self.live = 0

    def connection_made(self, out: wskit.Sender) -> Callable[[wskit.Message], None]:
        self.live += 1
        out.send(f"{self.live} connected")
        return lambda msg: out.send(f"{self.live} connected")

    def connection_lost(self, handler: object) -> None:
        self.live -= 1


router.add("/count", Counter())


def main() -> None:
    parser = argparse.ArgumentParser(description="wskit router: handlers by path")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    wskit.listen((args.host, args.port), router)


if __name__ == "__main__":
    main()
