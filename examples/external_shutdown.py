"""External shutdown: stop a server from another thread (ws-rs's external_shutdown).

Shows ``WebSocket.shutdown()`` called from outside the Trio thread: the
server runs in a background thread (``trio.run`` of an ``async with
wskit.WebSocket`` block), and the main thread — here waiting for ``stop`` on
stdin — shuts it down. ``shutdown()`` is thread-safe, idempotent and returns
at once; the server thread then closes every connection with 1001, and
``join()`` returns when it is done.

Policy choices:
- The main thread owns the lifecycle: ``stop`` (or the end of stdin, or
  Ctrl-C) shuts the server down and the program exits 0.
- Signals are the main thread's business: wskit handles SIGINT/SIGTERM
  itself only when it runs in the main thread, so here the main thread turns
  Ctrl-C into ``shutdown()``.
- A port that can't be bound is reported by the server thread to the main
  thread, which exits 2.

    python examples/external_shutdown.py --port 3012
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable

import trio

import wskit


def echo(out: wskit.Sender) -> Callable[[wskit.Message], None]:
    return out.send


def main() -> int:
    parser = argparse.ArgumentParser(description="wskit server stopped from the main thread")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    ws = wskit.WebSocket(echo)
    ready = threading.Event()
    failures: list[wskit.Error] = []

    async def serve() -> None:
        async with ws:
            await ws.listen((args.host, args.port))
            ready.set()
        # Leaving the block waited for shutdown() and for every connection.

    def server_thread() -> None:
        try:
            trio.run(serve)
        except wskit.Error as err:
            failures.append(err)
        finally:
            ready.set()

    thread = threading.Thread(target=server_thread, name="wskit-server")
    thread.start()
    ready.wait()
    if failures:
        thread.join()
        print(f"cannot serve: {failures[0]}", file=sys.stderr)
        return 2

    print("type 'stop' (or end the input, or Ctrl-C) to shut the server down", flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
    except KeyboardInterrupt:
        pass
    print("shutting down from the main thread", flush=True)
    ws.shutdown()
    thread.join()
    print("server stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
