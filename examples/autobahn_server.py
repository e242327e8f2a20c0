"""Autobahn server: the echo server that conformance suites drive (ws-rs's autobahn-server).

Shows a bare echo closure tuned for the Autobahn|Testsuite ``fuzzingclient``,
which sends messages up to 16 MiB, fragmented and compressed, and checks that
each comes back unchanged and that every protocol violation is refused with
the right close code. wskit does all the checking; the handler only echoes.

Policy choices:
- ``max_message_size`` and ``max_send_queue`` are raised to 64 MiB so that
  the 16 MiB cases (9.x) are echoed instead of refused with 1009; keep the
  defaults (1 MiB, 4 MiB) for a server on the internet.
- permessage-deflate stays on (cases 12.x and 13.x negotiate it).
- keepalive pings are off: the suite measures the replies to its own frames.
- Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001 and exits 0.

    python examples/autobahn_server.py --port 9002
    # fuzzingclient.json: {"servers": [{"agent": "wskit", "url": "ws://127.0.0.1:9002"}],
    #                      "cases": ["*"], "exclude-cases": [], "exclude-agent-cases": {}}
    docker run -it --rm -v "$PWD:/config" -v "$PWD/reports:/reports" --network host \\
        crossbario/autobahn-testsuite wstest -m fuzzingclient -s /config/fuzzingclient.json
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

import wskit

#: Large enough for Autobahn's biggest messages (16 MiB in cases 9.x).
LARGE = 64 * 2**20
SETTINGS = wskit.Settings(max_message_size=LARGE, max_send_queue=LARGE, ping_interval=None)


def echo(out: wskit.Sender) -> Callable[[wskit.Message], None]:
    return out.send  # called with each message: it goes straight back


def main() -> None:
    parser = argparse.ArgumentParser(description="wskit echo server for Autobahn|Testsuite")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=9002, help="port (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    wskit.listen((args.host, args.port), echo, settings=SETTINGS)


if __name__ == "__main__":
    main()
