"""Client: sends "Hello WebSocket", prints the first message it gets, closes.

Shows ``wskit.connect`` with ws-rs's client closure: the send is made in the
factory, before the handshake is done; wskit queues it and delivers it right
after the connection opens. The returned callable is ``on_message``.

Policy choices: closes with 1000 (normal) after the first message and ignores
any message that follows; ``wskit.connect`` returns once the closing handshake
is done, so the exit status is 0 on success and 1 (with the reason on stderr)
when the connection can't be opened (refused, handshake rejected, bad URL).

    python examples/echo_server.py &
    python examples/client.py ws://127.0.0.1:3012
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import wskit


def client(out: wskit.Sender) -> Callable[[wskit.Message], None]:
    out.send("Hello WebSocket")  # queued until the connection is open
    done = False

    def on_message(msg: wskit.Message) -> None:
        nonlocal done
        if not done:
            done = True
            print(f"Got message: {msg}", flush=True)
            out.close(wskit.CloseCode.NORMAL)

    return on_message


def main() -> int:
    parser = argparse.ArgumentParser(description="wskit client")
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:3012",
                        help="server to connect to (default: %(default)s)")
    args = parser.parse_args()
    try:
        wskit.connect(args.url, client)
    except wskit.Error as err:
        print(f"{args.url}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
