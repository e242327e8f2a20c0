"""Echo exactly N small messages through a server, for instruction counts.

The *echo-small* workload of ``run.py`` measures for a fixed time, so the
number of messages varies from run to run; an instruction count per message
(``valgrind --tool=callgrind``, repeatable on a loaded machine, where the
timings are not) needs a fixed number. This client opens ``--conns``
connections, keeps one ``--size``-byte text message in flight on each until
``--messages`` echoes came back in all, checks every echo, and closes each
connection politely (close frame, the server's close frame, end of stream).

Run the server under callgrind twice, with two message counts, and divide
the difference of the two totals by the difference of the counts: start-up,
handshakes and closes cancel out, what is left is the cost of one message::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \\
        .venv/bin/python bench/servers/wskit_server.py --port 9000 &
    .venv/bin/python bench/count_echo.py --port 9000 --messages 2000

Plain Python and blocking-free ``selectors``: the server under valgrind is
~50x slower than this client, so the client is never what sets the pace.
"""

from __future__ import annotations

import argparse
import base64
import os
import selectors
import socket
import sys
import time


def _frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (RFC 6455 5.2), payload under 126 bytes."""
    key = os.urandom(4)
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + key + masked


def _handshake(sock: socket.socket, host: str, port: int) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("server closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"no upgrade: {head[:80]!r}")
    if head.index(b"\r\n\r\n") + 4 != len(head):
        raise SystemExit("unexpected bytes after the 101")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connect-timeout", type=float, default=120.0)
    args = parser.parse_args()
    if not 0 < args.size < 126:
        parser.error("--size must be 1-125")

    payload = (b"0123456789abcdefghijklmnopqrstuvwxyz" * 4)[:args.size]
    frame = _frame(0x1, payload)
    echo = bytes((0x81, len(payload))) + payload

    socks: list[socket.socket] = []
    deadline = time.monotonic() + args.connect_timeout
    while len(socks) < args.conns:
        try:
            sock = socket.create_connection((args.host, args.port), timeout=30)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # the server is still starting (under valgrind: slowly)
            continue
        _handshake(sock, args.host, args.port)
        socks.append(sock)

    sel = selectors.DefaultSelector()
    got: dict[socket.socket, bytes] = {}
    sent = done = 0
    started = time.monotonic()
    for sock in socks:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        got[sock] = b""
        if sent < args.messages:
            sock.sendall(frame)
            sent += 1
    while done < args.messages:
        for key, _ in sel.select(timeout=60):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            data = sock.recv(65536)
            if not data:
                raise SystemExit("server closed a connection mid-run")
            buf = got[sock] + data
            while len(buf) >= len(echo):
                if buf[:len(echo)] != echo:
                    raise SystemExit(f"wrong echo: {buf[:len(echo)]!r}")
                buf = buf[len(echo):]
                done += 1
                if sent < args.messages:
                    sock.sendall(frame)
                    sent += 1
            got[sock] = buf
    elapsed = time.monotonic() - started

    close = _frame(0x8, b"\x03\xe8")
    for sock in socks:
        sel.unregister(sock)
        sock.setblocking(True)
        sock.settimeout(60)
        sock.sendall(close)
        rest = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            rest += data
        if not rest.startswith(b"\x88"):
            raise SystemExit(f"no close frame back: {rest[:16]!r}")
        sock.close()
    print(f"{done} echoes on {len(socks)} connections in {elapsed:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
