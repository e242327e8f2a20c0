"""UNSAFE SSL client: connects to ``wss://`` WITHOUT checking the server's certificate.

(ws-rs's unsafe-ssl-client.) Shows ``ssl_context=`` on ``wskit.connect``
with verification explicitly turned off — for a development server with a
self-signed certificate, and nothing else. With verification off, anyone on
the network path can impersonate the server, read and change the traffic;
TLS then only protects against passive eavesdroppers. The program says so
on stderr every time it runs.

The safe way for a self-signed server: trust *its* certificate instead::

    context = ssl.create_default_context(cafile="server-ca.pem")

Policy choices:
- Only ``wss://`` URLs: for ``ws://`` there is nothing to turn off (exit 2).
- Sends one message (``Hello WebSocket`` or ``--message``), prints the first
  answer as ``Got message: ...``, closes with 1000, exits 0; exit 1 when the
  connection can't be opened.

    python examples/ssl_server.py --cert cert.pem --key key.pem --port 3012 &
    python examples/unsafe_ssl_client.py wss://127.0.0.1:3012
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Callable

import wskit

WARNING = ("WARNING: TLS certificate verification is OFF (unsafe_ssl_client.py). "
           "The server's identity is NOT checked: anyone on the network path can "
           "impersonate it. Never use this outside local development.")


def unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False  # must be turned off before verify_mode
    context.verify_mode = ssl.CERT_NONE
    return context


def main() -> int:
    parser = argparse.ArgumentParser(description="wss:// client WITHOUT certificate checks")
    parser.add_argument("url", help="wss:// URL")
    parser.add_argument("--message", default="Hello WebSocket", help="what to send")
    args = parser.parse_args()
    if not args.url.startswith("wss://"):
        print(f"{args.url}: not a wss:// URL; this client exists only to skip TLS checks",
              file=sys.stderr)
        return 2
    print(WARNING, file=sys.stderr, flush=True)

    def factory(out: wskit.Sender) -> Callable[[wskit.Message], None]:
        out.send(args.message)

        def on_message(msg: wskit.Message) -> None:
            print(f"Got message: {msg}", flush=True)
            out.close(wskit.CloseCode.NORMAL)

        return on_message

    try:
        wskit.connect(args.url, factory, ssl_context=unverified_context())
    except wskit.Error as err:
        print(f"{args.url}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
