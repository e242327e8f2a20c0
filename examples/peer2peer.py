"""Peer to peer: one WebSocket that both listens and connects to its peers (ws-rs's peer2peer).

Shows one ``wskit.WebSocket`` with a listener and client connections side
by side: the same handler class serves both directions, ``Sender.broadcast``
reaches every connection of either kind, and each peer says hello when a
connection opens.

    python examples/peer2peer.py --port 3012 --name alice
    python examples/peer2peer.py --port 3013 --name bob ws://127.0.0.1:3012

Each line typed on stdin goes to every connected peer as ``<name>: <line>``;
everything received is printed as ``<name> got: <message>``.

Policy choices:
- A peer that can't be reached at start is reported on stderr and skipped;
  there is no reconnection (peers that come later connect to us).
- The end of stdin only stops reading; the peer keeps listening until
  Ctrl-C (SIGINT) or SIGTERM, which close every connection (both kinds)
  with 1001 and exit 0.
- stdin is read in a daemon thread that sends through
  ``ws.broadcaster()``, a thread-safe ``Sender``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Iterator

import trio

import wskit


class Peer(wskit.Handler):
    name = "peer"

    def on_open(self, handshake: wskit.Handshake) -> None:
        self.out.send(f"hello from {Peer.name}")

    def on_message(self, msg: wskit.Message) -> None:
        print(f"{Peer.name} got: {msg}", flush=True)

    def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
        print(f"{Peer.name}: connection {self.out.connection_id} closed ({int(code)})", flush=True)


def stdin_lines() -> Iterator[str]:
    """Lines of stdin, read with ``os.read`` (no lock held while waiting)."""
    pending = b""
    while chunk := os.read(sys.stdin.fileno(), 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace").removesuffix("\r")
    if pending:
        yield pending.decode("utf-8", "replace")


def pump(everyone: wskit.Sender) -> None:
    try:
        for line in stdin_lines():
            if line:
                everyone.send(f"{Peer.name}: {line}")
    except wskit.Error:
        pass  # the WebSocket has shut down


async def run(args: argparse.Namespace) -> None:
    async with wskit.WebSocket(Peer) as ws:
        host, port = await ws.listen((args.host, args.port))
        print(f"{Peer.name} listening on ws://{host}:{port}", flush=True)
        for url in args.peers:
            try:
                await ws.connect(url)
            except wskit.Error as err:
                print(f"{Peer.name}: cannot reach {url}: {err}", file=sys.stderr, flush=True)
        threading.Thread(target=pump, args=(ws.broadcaster(),), daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser(description="wskit peer: listens and connects")
    parser.add_argument("peers", nargs="*", metavar="URL", help="peers to connect to")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    parser.add_argument("--name", default=f"peer{os.getpid()}", help="this peer's name")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    Peer.name = args.name
    try:
        trio.run(run, args)
    except wskit.Error as err:
        print(f"{Peer.name}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
