"""Threaded: a server and a client in two threads of one process (ws-rs's threaded).

Shows that each ``wskit.WebSocket`` runs in the thread that runs its Trio
loop, and that several can live in one process: the server runs in one
thread, the client (``wskit.connect``) in another, and the main thread
coordinates — it waits for the server to listen, starts the client, and
when the client is done, shuts the server down from outside its thread.

Output, one line per event::

    server got: Hello WebSocket
    client got: Hello WebSocket
    client closed: 1000
    server closed: 1000      (these two lines in either order)

Policy choices:
- Handlers print from their own threads, through ``say()``, which holds a
  lock: ``print`` from two threads at once may interleave its pieces.
- ``--port 0`` (the default) picks a free port, so the example never clashes.
- Ctrl-C shuts the server down from the main thread and exits 0.

    python examples/threaded.py
"""

from __future__ import annotations

import argparse
import sys
import threading

import trio

import wskit

_output = threading.Lock()


def say(line: str) -> None:
    """Print one whole line, whichever thread calls."""
    with _output:
        print(line, flush=True)


class Server(wskit.Handler):
    def on_message(self, msg: wskit.Message) -> None:
        say(f"server got: {msg}")
        self.out.send(msg)

    def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
        say(f"server closed: {int(code)}")


class Client(wskit.Handler):
    def on_open(self, handshake: wskit.Handshake) -> None:
        self.out.send("Hello WebSocket")

    def on_message(self, msg: wskit.Message) -> None:
        say(f"client got: {msg}")
        self.out.close(wskit.CloseCode.NORMAL)

    def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
        say(f"client closed: {int(code)}")


def main() -> int:
    parser = argparse.ArgumentParser(description="wskit server and client in two threads")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port (%(default)s: any free one)")
    args = parser.parse_args()

    server = wskit.WebSocket(Server)
    bound: list[tuple[str, int]] = []
    ready = threading.Event()

    async def serve() -> None:
        async with server:
            bound.append(await server.listen((args.host, args.port)))
            ready.set()

    def run_server() -> None:
        try:
            trio.run(serve)
        finally:
            ready.set()

    server_thread = threading.Thread(target=run_server, name="server")
    server_thread.start()
    ready.wait()
    if not bound:
        server_thread.join()
        return 2
    host, port = bound[0]
    client_thread = threading.Thread(target=wskit.connect, name="client",
                                     args=(f"ws://{host}:{port}", Client))
    try:
        client_thread.start()
        client_thread.join()
    except KeyboardInterrupt:
        pass
    server.shutdown()  # thread-safe: the server's loop runs in server_thread
    server_thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
