"""Server: echoes and prints each message, then stops after its first connection (ws-rs's server).

Shows a ``Handler`` that shuts the whole WebSocket down from a hook:
``self.out.shutdown()`` in ``on_close`` ends ``wskit.listen``, which returns
normally, so the program exits 0 on its own once the first client is gone.

Policy choices:
- One client, then exit: a connection that arrives while the first is open
  is served too, and gets 1001 when the first one closes.
- Each message is printed on stdout (``Server got message '...'``) and echoed
  as it came, text or binary.
- Ctrl-C (SIGINT) or SIGTERM also closes everyone with 1001 and exits 0.

    python examples/server.py --port 3012 &
    python examples/client.py ws://127.0.0.1:3012
"""

from __future__ import annotations

import argparse
import logging

import wskit


class Server(wskit.Handler):
    def on_message(self, msg: wskit.Message) -> None:
        print(f"Server got message '{msg}'.", flush=True)
        self.out.send(msg)

    def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
        print(f"WebSocket closing for ({int(code)}) {reason}", flush=True)
        print("Shutting down server after first connection closes.", flush=True)
        self.out.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description="wskit server that stops after one client")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    wskit.listen((args.host, args.port), Server)


if __name__ == "__main__":
    main()
