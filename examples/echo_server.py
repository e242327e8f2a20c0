"""Echo server: every message comes back to its sender, text as text, binary as binary.

Shows the smallest wskit server, the ws-rs closure factory: the factory gets
each connection's Sender and returns a plain callable, which wskit uses as
``on_message``.

Policy choices: wskit's defaults throughout (1 MiB messages, permessage-deflate,
pings every 20 s); binds 127.0.0.1 unless ``--host`` says otherwise; Ctrl-C
(SIGINT) or SIGTERM closes every connection with 1001 and exits 0.

    python examples/echo_server.py --port 3012
"""

from __future__ import annotations

import argparse
import logging

import wskit


def main() -> None:
    parser = argparse.ArgumentParser(description="wskit echo server")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    wskit.listen((args.host, args.port), lambda out: lambda msg: out.send(msg))


if __name__ == "__main__":
    main()
