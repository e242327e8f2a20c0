"""SSL server: an echo server over TLS (``wss://``), with a certificate and key from files.

Shows ``ssl_context=`` on ``wskit.listen``: wskit wraps each accepted socket
in TLS; the handler is the same as without it.

Policy choices:
- ``ssl.create_default_context(Purpose.CLIENT_AUTH)``: Python's secure
  defaults (TLS 1.2 or newer, no compression, modern ciphers); clients are
  not asked for certificates.
- ``--cert`` is a PEM chain (the server's certificate first, then any
  intermediates), ``--key`` its PEM private key; both are required, and the
  program exits 2 with one line if they can't be loaded.
- The TLS handshake counts against ``handshake_timeout`` (10 s): a client
  that opens TCP and never speaks TLS is dropped.
- Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001 and exits 0.

    python examples/ssl_server.py --cert cert.pem --key key.pem --port 3012
    # a throwaway certificate: python -m trustme  (writes server.pem, server.key, client.pem)
"""

from __future__ import annotations

import argparse
import logging
import ssl
import sys

import wskit


def main() -> int:
    parser = argparse.ArgumentParser(description="wskit echo server over TLS")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    parser.add_argument("--cert", required=True, help="certificate chain, PEM")
    parser.add_argument("--key", required=True, help="private key, PEM")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.cert, args.key)
    except (OSError, ssl.SSLError) as exc:
        print(f"cannot load {args.cert} / {args.key}: {exc}", file=sys.stderr)
        return 2
    wskit.listen((args.host, args.port), lambda out: out.send, ssl_context=context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
