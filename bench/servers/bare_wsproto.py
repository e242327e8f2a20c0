"""Benchmark server: a bare Trio + wsproto loop, the ceiling for that stack.

No abstraction on purpose: what wskit costs above this is overhead. These
choices make it fast, and all are open to any Trio library:

- Sends are synchronous ``socket.send`` calls on the non-blocking socket; only
  when the kernel buffer is full does a task ``await wait_writable()``. A trip
  through Trio's scheduler per send is what makes a 500-client broadcast slow.
- The opening handshake is parsed by hand (no h11), and a broadcast frame is
  encoded once and written to every client: server frames are unmasked, so the
  bytes are the same for all.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import trio
from _common import BCAST, HOST, MAX_MESSAGE_SIZE, parse_port, raise_nofile_limit
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import RemoteProtocolError, generate_accept_token

READ_SIZE = 256 * 1024  # large reads: a 1 MiB message arrives in a few pieces


class Client:
    def __init__(self, sock: socket.socket, nursery: trio.Nursery) -> None:
        self.sock = sock  # the stdlib socket, for synchronous sends
        self.tsock = trio.socket.from_stdlib_socket(sock)  # same fd, non-blocking
        self.nursery = nursery
        self.ws = Connection(ConnectionType.SERVER)
        self.out = bytearray()  # what the kernel would not take yet
        self.drained = trio.Event()

    def send(self, data: bytes | bytearray) -> None:
        if self.out:  # keep order behind what is already waiting
            self.out += data
            return
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            return  # the reading task sees the dead socket and cleans up
        if n < len(data):
            self.out += memoryview(data)[n:]
            self.drained = trio.Event()
            self.nursery.start_soon(self.flush)

    async def flush(self) -> None:
        try:
            while self.out:
                await self.tsock.wait_writable()
                with contextlib.suppress(BlockingIOError):  # a spurious wake-up
                    del self.out[: self.sock.send(self.out)]
        except (OSError, trio.ClosedResourceError):
            self.out.clear()
        self.drained.set()


clients: set[Client] = set()


async def handshake(c: Client) -> bool:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await c.tsock.recv(4096)
        if not chunk or len(buf) > 16384:
            return False
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    key = b""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    if not key:
        c.send(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        return False
    accept = generate_accept_token(key)
    c.send(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    c.ws.receive_data(rest)
    return True


def on_message(c: Client, data: str | bytes | bytearray) -> None:
    if isinstance(data, str) and data.startswith(BCAST):
        frame = c.ws.send(TextMessage(data=data[len(BCAST) :]))
        for other in clients:
            if other.ws.state is ConnectionState.OPEN:
                other.send(frame)
    elif isinstance(data, str):
        c.send(c.ws.send(TextMessage(data=data)))
    else:
        c.send(c.ws.send(BytesMessage(data=data)))


async def serve_client(c: Client) -> None:
    parts: list[Any] = []  # fragments of the message being received
    size = 0
    try:
        if not await handshake(c):
            return
        clients.add(c)
        while True:
            for event in c.ws.events():
                if isinstance(event, (TextMessage, BytesMessage)):
                    parts.append(event.data)
                    size += len(event.data)
                    if size > MAX_MESSAGE_SIZE:
                        c.send(c.ws.send(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG)))
                        return
                    if event.message_finished:
                        if len(parts) == 1:
                            on_message(c, parts[0])
                        elif isinstance(event, TextMessage):
                            on_message(c, "".join(parts))
                        else:
                            on_message(c, b"".join(parts))
                        parts, size = [], 0
                elif isinstance(event, CloseConnection):
                    if c.ws.state is ConnectionState.REMOTE_CLOSING:
                        c.send(c.ws.send(event.response()))
                    return
                elif isinstance(event, Ping):
                    c.send(c.ws.send(event.response()))
            if c.out:  # backpressure: read no more until our replies are out
                await c.drained.wait()
            data = await c.tsock.recv(READ_SIZE)
            if not data:
                return
            c.ws.receive_data(data)
    except RemoteProtocolError:
        c.send(c.ws.send(CloseConnection(code=CloseReason.PROTOCOL_ERROR)))
    except OSError:
        pass
    finally:
        clients.discard(c)
        if c.out:
            with trio.move_on_after(5):
                await c.drained.wait()
        c.tsock.close()  # we close first after a closing handshake, per RFC 6455


async def main(port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(4096)
    listener.setblocking(False)
    async with trio.open_nursery() as nursery:
        while True:
            await trio.lowlevel.wait_readable(listener)
            while True:
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:
                    break
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                nursery.start_soon(serve_client, Client(sock, nursery))


if __name__ == "__main__":
    raise_nofile_limit()
    trio.run(main, parse_port(__doc__ or ""))
