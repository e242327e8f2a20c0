"""Shared: one state object, owned by the factory, shared by every handler (ws-rs's shared).

Shows a ``wskit.Factory`` subclass holding state for all its connections: a
global message counter and the last messages (the history). Each handler
gets a reference to the factory; a new client first receives the history,
then each message it sends is numbered and answered with
``#<n> <message>``; ``connection_lost`` keeps a count of who is connected.

Policy choices:
- No locks: every handler of one WebSocket runs in its Trio thread, one
  event at a time, so the shared state changes only between two hooks. (Use
  a lock if other threads touch it too.)
- The history is bounded (``--history``, default 10 messages): memory stays
  bounded however long the server runs. Nothing is persisted.
- Text only: a binary message closes the connection with 1003.
- Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001 and exits 0.

    python examples/shared.py --port 3012
"""

from __future__ import annotations

import argparse
import collections
import logging

import wskit

log = logging.getLogger("shared")


class Numbered(wskit.Handler):
    def __init__(self, out: wskit.Sender, state: Shared) -> None:
        super().__init__(out)
        self.state = state

    def on_open(self, handshake: wskit.Handshake) -> None:
        for line in self.state.history:
            self.out.send(f"history {line}")
        self.out.send(f"welcome: {self.state.connected} connected, "
                      f"{self.state.count} messages so far")

    def on_message(self, msg: wskit.Message) -> None:
        if msg.is_binary:
            self.out.close(wskit.CloseCode.UNSUPPORTED, "text messages only")
            return
        line = self.state.record(str(msg))
        self.out.send(line)


class Shared(wskit.Factory):
    """The state every handler shares."""

    def __init__(self, history: int) -> None:
        self.count = 0
        self.connected = 0
        self.history: collections.deque[str] = collections.deque(maxlen=history)

    def record(self, text: str) -> str:
        self.count += 1
        line = f"#{self.count} {text}"
        self.history.append(line)
        return line

    def connection_made(self, out: wskit.Sender) -> Numbered:
        self.connected += 1
        return Numbered(out, self)

    def connection_lost(self, handler: object) -> None:
        self.connected -= 1
        log.info("%d connected", self.connected)


def main() -> None:
    parser = argparse.ArgumentParser(description="wskit server with state shared by all handlers")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    parser.add_argument("--history", type=int, default=10,
                        help="messages replayed to newcomers (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    wskit.listen((args.host, args.port), Shared(args.history))


if __name__ == "__main__":
    main()
