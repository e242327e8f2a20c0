"""Handler server: a ``wskit.Handler`` subclass as the factory, with shared state.

Shows the class-based style: ``wskit.listen(addr, Server)`` makes one
``Server(out)`` per connection; ``on_open``/``on_close`` keep a count of live
connections in a class attribute, and each text message is answered with
``"<n> connected: <message>"``.

Policy choices:
- The counter needs no lock: every handler of one WebSocket runs in its Trio
  thread, one event at a time, and ``on_close`` is called exactly once for
  every connection that got ``on_open``, so the count can't drift.
- Text only: a binary message closes the connection with 1003 (unsupported
  data, RFC 6455 section 7.4.1) instead of guessing an encoding.
- wskit's defaults otherwise; Ctrl-C (SIGINT) or SIGTERM closes everyone with
  1001 and exits 0.

    python examples/server_handler.py --port 3012
"""

from __future__ import annotations

import argparse
import logging

import wskit

log = logging.getLogger("server_handler")


class Server(wskit.Handler):
    #: Live connections, shared by every handler.
    connected = 0

    def on_open(self, handshake: wskit.Handshake) -> None:
        Server.connected += 1
        log.info("connection %d from %s opened (%d connected)",
                 self.out.connection_id, handshake.remote_addr(), Server.connected)

    def on_message(self, msg: wskit.Message) -> None:
        if msg.is_binary:
            self.out.close(wskit.CloseCode.UNSUPPORTED, "text messages only")
            return
        self.out.send(f"{Server.connected} connected: {msg}")

    def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
        Server.connected -= 1
        log.info("connection %d closed: %s %r (%d connected)",
                 self.out.connection_id, code, reason, Server.connected)


def main() -> None:
    parser = argparse.ArgumentParser(description="wskit Handler example")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    wskit.listen((args.host, args.port), Server)


if __name__ == "__main__":
    main()
