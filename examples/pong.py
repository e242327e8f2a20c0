"""Pong: pings on a timer, measures the round trip, closes peers that stop answering (ws-rs's pong).

Shows ``Sender.timeout`` / ``on_timeout`` and ``on_pong``. Every
``--interval`` seconds the server pings each client with the current time
as payload; the pong carries it back, and the difference is the round-trip
time, logged and kept per connection (a client can ask with ``rtt?``).
A second timer expires a client that has not answered a ping for
``--expire`` seconds: it is closed with 1001 (``missed pong``). Any other
message is echoed.

Policy choices:
- wskit's own keepalive is turned off (``ping_interval=None``): this handler
  does the pinging itself, with its own timings.
- Any pong resets the expiry, even an unsolicited one; a pong whose payload
  isn't one of our timestamps measures nothing.
- The timestamp is ``time.monotonic()``, packed as 8 bytes: immune to wall
  clock changes, meaningless outside this process (only we read it back).
- Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001 and exits 0.

    python examples/pong.py --port 3012 --interval 5 --expire 15
"""

from __future__ import annotations

import argparse
import logging
import struct
import time
from typing import Any

import wskit

log = logging.getLogger("pong")


class Pong(wskit.Handler):
    interval = 5.0
    expire = 15.0

    def on_open(self, handshake: wskit.Handshake) -> None:
        self.rtt: float | None = None
        self.out.timeout(self.interval, "ping")
        self.expiry = self.out.timeout(self.expire, "expire")

    def on_timeout(self, token: Any) -> None:
        if token == "ping":
            self.out.ping(struct.pack("!d", time.monotonic()))
            self.out.timeout(self.interval, "ping")
        elif token == "expire":
            log.info("connection %d: no pong for %ss, closing",
                     self.out.connection_id, self.expire)
            self.out.close(wskit.CloseCode.AWAY, "missed pong")

    def on_pong(self, data: bytes) -> None:
        self.expiry.cancel()
        self.expiry = self.out.timeout(self.expire, "expire")
        if len(data) == 8:
            self.rtt = time.monotonic() - struct.unpack("!d", data)[0]
            log.info("connection %d: round trip %.3f ms", self.out.connection_id,
                     self.rtt * 1000)

    def on_message(self, msg: wskit.Message) -> None:
        if msg == "rtt?":
            self.out.send("no pong yet" if self.rtt is None else f"rtt {self.rtt * 1000:.3f} ms")
        else:
            self.out.send(msg)


def main() -> None:
    parser = argparse.ArgumentParser(description="wskit server measuring ping round trips")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    parser.add_argument("--interval", type=float, default=5.0,
                        help="seconds between pings (%(default)s)")
    parser.add_argument("--expire", type=float, default=15.0,
                        help="seconds without a pong before closing (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    Pong.interval, Pong.expire = args.interval, args.expire
    wskit.listen((args.host, args.port), Pong, settings=wskit.Settings(ping_interval=None))


if __name__ == "__main__":
    main()
