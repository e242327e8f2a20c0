"""CLI: an interactive client — stdin lines out, messages in (ws-rs's cli).

Shows a ``Sender`` driven from another thread, as ws-rs's example does:
``wskit.connect`` runs the connection in the main thread, and a thread
reading stdin calls ``out.send(line)`` for each line (``Sender`` methods are
thread-safe and keep their order). Messages are printed on stdout as they
come; at the end of stdin the thread calls ``out.close()``.

Policy choices:
- The end of stdin closes at once with 1000. Answers still in flight are
  then discarded (wskit delivers nothing that arrives after our close
  frame); for pipes, ``wskit client`` waits for them first (``--linger``).
- Binary messages are shown as ``<N bytes: hex>``.
- The exit status is 0 once the closing handshake is done (whoever closed),
  1 with the reason on stderr when the connection can't be opened.
- stdin is read with ``os.read`` in a daemon thread: a read still blocked
  when the server closes first never holds up the program's exit.

    python examples/cli.py ws://127.0.0.1:3012
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Iterator

import wskit


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
    """Runs in its own thread: every line of stdin becomes a message."""
    try:
        for line in stdin_lines():
            out.send(line)
        out.close(wskit.CloseCode.NORMAL, "end of input")
    except wskit.Error:
        pass  # the connection is already closed


class Cli(wskit.Handler):
    def on_open(self, handshake: wskit.Handshake) -> None:
        threading.Thread(target=pump, args=(self.out,), daemon=True).start()

    def on_message(self, msg: wskit.Message) -> None:
        # A text message is a str, a binary one bytes.
        print(f"<{len(msg)} bytes: {msg.hex()}>" if isinstance(msg, bytes) else msg, flush=True)

    def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
        print(f"closed: {int(code)} {reason}".rstrip(), file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="interactive wskit client")
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:3012",
                        help="server to connect to (default: %(default)s)")
    args = parser.parse_args()
    try:
        wskit.connect(args.url, Cli)
    except wskit.Error as err:
        print(f"{args.url}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
