"""Broadcast: every message any client sends goes to every connected client.

Shows ``Sender.broadcast`` from a closure factory: the message is queued on
every open connection of the WebSocket, the sender's own included, in the
order the server receives messages.

Policy choices:
- Text and binary are both relayed verbatim (unlike ``chat.py``, which is
  text only and serves a page).
- A recipient whose send queue is full (a client that stopped reading) misses
  that message; wskit reports it to that recipient's ``on_error`` and every
  other client still gets it — one slow reader never stalls the others.
- Messages over 64 KiB close the sender's connection with 1009.
- Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001 and exits 0.

    python examples/broadcast.py --port 3012
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

import wskit


def relay(out: wskit.Sender) -> Callable[[wskit.Message], None]:
    return out.broadcast  # called with each message


def main() -> None:
    parser = argparse.ArgumentParser(description="wskit broadcast server")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    wskit.listen((args.host, args.port), relay,
                 settings=wskit.Settings(max_message_size=64 * 2**10))


if __name__ == "__main__":
    main()
