"""CLI chat: a chat server, and a command-line client for it, in one script.

Shows a server that keeps its members in shared state (a set of handlers)
and a client that reads stdin in a thread while ``wskit.connect`` runs:

    python examples/cli_chat.py --port 3012                         # the server
    python examples/cli_chat.py --connect ws://127.0.0.1:3012 --name ada   # a client

Each client line is sent to every *other* member as ``<name>: <line>``;
joins and leaves are announced as ``* <name> joined`` / ``* <name> left``.

Policy choices:
- The name comes from the URL (``/?name=ada``), defaults to ``guest<id>``,
  and is cut to 20 characters; names need not be unique.
- A member does not get its own lines back (its terminal already shows them).
- Text only; a line over 4 KiB closes the sender's connection with 1009.
- The client: the end of stdin closes with 1000 and exits 0; Ctrl-C too.
  The server: Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001, exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import ClassVar
from urllib.parse import quote

import wskit

log = logging.getLogger("cli_chat")


class Member(wskit.Handler):
    #: Everyone in the chat (one WebSocket, one Trio thread: no lock needed).
    members: ClassVar[set[Member]] = set()

    def on_open(self, handshake: wskit.Handshake) -> None:
        names = handshake.request.query.get("name", [])
        self.name = (names[0].strip() if names else "")[:20] or f"guest{self.out.connection_id}"
        self.tell_others(f"* {self.name} joined")
        Member.members.add(self)
        self.out.send(f"* welcome {self.name}; {len(Member.members)} here")

    def on_message(self, msg: wskit.Message) -> None:
        if msg.is_binary:
            self.out.close(wskit.CloseCode.UNSUPPORTED, "text only")
        else:
            self.tell_others(f"{self.name}: {msg}")

    def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
        if self in Member.members:
            Member.members.discard(self)
            self.tell_others(f"* {self.name} left")

    def tell_others(self, line: str) -> None:
        for member in Member.members:
            if member is not self:
                try:
                    member.out.send(line)
                except wskit.Error as err:  # that member is closing, or not reading
                    log.info("not delivered to %s: %s", member.name, err)


def stdin_lines() -> Iterator[str]:
    """Lines of stdin, read with ``os.read`` (no lock held while waiting)."""
    pending = b""
    while chunk := os.read(sys.stdin.fileno(), 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace").removesuffix("\r")
    if pending:
        yield pending.decode("utf-8", "replace")


def pump(out: wskit.Sender) -> None:
    """The client's stdin thread: each line is sent, the end of input closes."""
    try:
        for line in stdin_lines():
            if line:
                out.send(line)
        out.close(wskit.CloseCode.NORMAL)
    except wskit.Error:
        pass  # already closed by the server


class Client(wskit.Handler):
    def on_open(self, handshake: wskit.Handshake) -> None:
        threading.Thread(target=pump, args=(self.out,), daemon=True).start()

    def on_message(self, msg: wskit.Message) -> None:
        print(msg, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="wskit command-line chat")
    parser.add_argument("--host", default="127.0.0.1", help="server: address to bind")
    parser.add_argument("--port", type=int, default=3012, help="server: port (%(default)s)")
    parser.add_argument("--connect", metavar="URL", help="be a client of the server at URL")
    parser.add_argument("--name", default="", help="client: your name in the chat")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    if args.connect is None:
        wskit.listen((args.host, args.port), Member,
                     settings=wskit.Settings(max_message_size=4096))
        return 0
    url = f"{args.connect.rstrip('/')}/?name={quote(args.name)}"
    try:
        wskit.connect(url, Client)
    except wskit.Error as err:
        print(f"{args.connect}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
