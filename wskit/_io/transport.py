"""Moving one connection's bytes: the read, the one write path, the close.

On plain TCP the non-blocking socket is read and written directly
(``os.read``/``os.write``/``os.writev`` on its file descriptor): one trip
through the scheduler per read, none per write. Frames are written
synchronously while the kernel takes them; a writer task runs only while the
kernel's buffer is full, and for TLS, whose ``SSLStream`` must be awaited.
While the transport is *corked* (the driver dispatching what one read
brought) writes wait, so that the replies to one read leave in one write.

What the kernel has not taken yet is the *backlog*: memoryviews of the
queued buffers, never a copy. ``queued`` counts it in bytes, together with
what is inside a TLS ``send_all()``.

Closing (RFC 6455 section 7.1.1): the last frames are flushed, the TCP stream
is half-closed and read until the peer's end of stream, so that the kernel
never resets the connection while a close frame or an HTTP error response is
still in flight. Every wait is bounded by ``close_timeout``.
"""

from __future__ import annotations

import contextlib
import enum
import math
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import trio
from trio.lowlevel import checkpoint, wait_readable

from .._core.masking import MessageBufferProtocol
from .._core.protocol import ReadInto

__all__ = ["SOCKET_ERRORS", "FrameSource", "Transport", "WriteState", "or_inf", "tune_socket",
           "why"]

_MAX_IOV = 512  # buffers per writev() (Linux allows 1024)
_MAX_READ = 2**18  # the largest read while a large message streams in (measured best)
_MAX_SINK_READ = 2**20  # the largest read straight into a frame being assembled (measured)
# TCP_NOTSENT_LOWAT: trio sets 16 KiB on every TCP stream. The kernel then
# takes a write only while less than that waits unsent, so a 1 MiB message
# leaves in four or more writes, each after a trip through the scheduler
# (asyncio leaves the option unset and hands the kernel the whole message at
# once). Transport.make_room raises it, once, to the largest message the
# connection sends (at most _MAX_LOWAT): the kernel takes that in one write.
# Small messages never raise it, nor do frames shared by a broadcast: a large
# broadcast stays one copy in user space, not one kernel copy per recipient.
_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", None)
_TRIO_LOWAT = 2**14
_MAX_LOWAT = 2**22
_NEVER = 2**63  # unsent_room of a stream whose option is not ours to change
SOCKET_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError)


class FrameSource(Protocol):
    """Where queued frames come from (the sans-I/O core)."""

    @property
    def output_size(self) -> int: ...
    @property
    def has_output(self) -> bool: ...
    def take_buffers(self) -> list[Any]: ...
    def take_output(self) -> bytes | bytearray: ...
    payload_sink: MessageBufferProtocol | None


class Owner(Protocol):
    """The connection a transport serves. One reference instead of three
    callbacks: a bound method per callback would cost ~64 bytes on each of
    thousands of idle connections."""

    def spawn(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run ``fn`` in the background; False if the connection can't."""

    def lost(self, why: str) -> None:
        """A read found the stream broken."""

    def write_failed(self, why: str) -> None:
        """A write failed: the connection must end."""


_NOTHING: tuple[Any, ...] = ()  # the empty backlog, shared


class WriteState(enum.Enum):
    """The write side. IDLE → WRITING (a writer task waits for room, or a TLS
    send is under way) → IDLE; any → FAILED (a write failed: nothing more
    is written); any → CLOSED (the stream is closed)."""

    IDLE = "idle"
    WRITING = "writing"
    FAILED = "failed"
    CLOSED = "closed"


_WRITE_MOVES: dict[WriteState, frozenset[WriteState]] = {
    WriteState.IDLE: frozenset({WriteState.WRITING, WriteState.FAILED, WriteState.CLOSED}),
    WriteState.WRITING: frozenset({WriteState.IDLE, WriteState.FAILED, WriteState.CLOSED}),
    WriteState.FAILED: frozenset({WriteState.CLOSED}),
    WriteState.CLOSED: frozenset(),
}


# For the per-message writes: Python 3.11 looks a member up on its Enum class
# through EnumType.__getattr__, four times the cost of a global.
_IDLE = WriteState.IDLE

# By value: a str's hash is cached, an Enum member's is computed in Python.
_WRITE_MOVES_BY_VALUE = {frm.value: frozenset(to.value for to in tos)
                         for frm, tos in _WRITE_MOVES.items()}


class Transport:
    """One connection's stream: reads, writes and closes it.

    ``owner.spawn(fn)`` runs a background task for the connection (the
    writer) and says whether it could; ``owner.lost(why)`` is told why a read
    found the stream broken, ``owner.write_failed(why)`` once when a write
    fails (the connection must end). Tasks that wait for the backlog to shrink
    or the writer to finish park in :meth:`wait` and are woken by
    :meth:`wake` whenever that may have changed.
    """

    __slots__ = (
        "_backlog",
        "_base_read",
        "_lot",
        "_owner",
        "_read_size",
        "corked",
        "fd",
        "queued",
        "source",
        "state",
        "stream",
        "unsent_room",
    )

    def __init__(self, stream: trio.abc.Stream, read_size: int, owner: Owner) -> None:
        self.stream = stream
        #: Plain TCP: the socket's descriptor, read and written directly.
        self.fd: int | None = (stream.socket.fileno()
                               if isinstance(stream, trio.SocketStream) else None)
        self.source: FrameSource | None = None
        self.state = WriteState.IDLE
        #: Writes wait for the end of the batch being dispatched.
        self.corked = False
        self._base_read = self._read_size = read_size
        self._backlog: Sequence[Any] = _NOTHING
        #: Bytes taken from the source and not yet accepted by the kernel:
        #: the backlog's on plain TCP, what is inside a ``send_all()`` on TLS
        #: (the two never coexist). An attribute, not a property: every send
        #: reads it (the queue limit).
        self.queued = 0
        self._owner = owner
        #: Unsent bytes the kernel may hold for us (its TCP_NOTSENT_LOWAT);
        #: see :meth:`make_room`.
        self.unsent_room = (_TRIO_LOWAT if self.fd is not None and _NOTSENT_LOWAT is not None
                            else _NEVER)
        # Made on first use: most connections never wait.
        self._lot: trio.lowlevel.ParkingLot | None = None

    def _move(self, to: WriteState) -> None:
        if to.value not in _WRITE_MOVES_BY_VALUE[self.state.value]:
            raise AssertionError(f"write side: {self.state.name} -> {to.name}")
        self.state = to

    # -- reading --------------------------------------------------------

    async def read(self, *, yield_first: bool = True) -> bytes:
        """The next bytes from the peer; ``b""`` at the end of the stream
        (or when it broke: ``lost`` was told why).

        ``yield_first=False`` skips the checkpoint before trying the read:
        only for a read that is not in a loop (a peer sending without pause
        must not keep this task from yielding)."""
        if self.fd is None:  # TLS (or any other stream): its own receive_some
            try:
                return bytes(await self.stream.receive_some(self._read_size))
            except SOCKET_ERRORS as exc:
                self._owner.lost(why(exc))
                return b""
        # Plain TCP, after one checkpoint. Yielding *before* the read (our
        # reply just went out) lets the other connections run while the peer
        # answers, so the read mostly finds data and skips the epoll
        # registration that a failed read costs; trio's recv() yields after
        # the read, and waits in epoll after it: two trips. Measured: +20-30%
        # echo throughput.
        if yield_first:
            await checkpoint()
        data = self.read_ready()
        if data is None:
            data = await self.read_wait()
        return data

    def read_ready(self) -> bytes | None:
        """Plain TCP only: what the kernel holds now, without waiting;
        ``None`` if nothing yet, ``b""`` at the end of the stream (or when it
        broke: ``lost`` was told why). Not a checkpoint: see :meth:`read`."""
        size = self._read_size
        try:
            data = os.read(self.fd, size)  # type: ignore[arg-type]
        except BlockingIOError:
            return None
        except OSError as exc:
            self._owner.lost(f"read failed: {exc}")
            return b""
        # A read that filled the buffer means more is waiting (a large
        # message): read more at once next time, up to 256 KiB, since wsproto
        # parses big chunks much faster; back to read_size when it drains.
        if len(data) == size:
            self._read_size = min(size * 4, _MAX_READ)
        elif size != self._base_read:
            self._read_size = self._base_read
        return data

    async def read_wait(self) -> bytes:
        """Plain TCP only: wait until the peer sends, then read (as
        :meth:`read_ready`, but never ``None``)."""
        while True:
            try:
                await wait_readable(self.fd)  # type: ignore[arg-type]
            except (OSError, trio.ClosedResourceError) as exc:
                self._owner.lost(f"read failed: {exc}")
                return b""
            data = self.read_ready()
            if data is not None:
                return data
            # a spurious wake-up: wait again

    async def read_into(self) -> bytes | ReadInto:
        """:meth:`read` while the core has a ``payload_sink`` (the rest of a
        binary frame being assembled, nothing else buffered): the next bytes
        are read straight into the message (no ``bytes`` in between,
        unmasked in place, up to 1 MiB a read), and a :class:`ReadInto`
        says how many. On TLS, an ordinary :meth:`read`."""
        source, fd = self.source, self.fd
        sink = None if source is None else source.payload_sink
        if fd is None or sink is None:
            return await self.read()
        return await _read_into(self, fd, sink)

    # -- writing --------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self.state is WriteState.IDLE or self.state is WriteState.WRITING

    def output(self) -> None:
        """Frames were queued in the source: write them now, or at the end of
        the batch being dispatched (one write for the replies to one read)."""
        if not self.corked:
            self.write_now()

    def make_room(self, size: int) -> None:
        """Let the kernel hold one message of ``size`` unsent bytes (up to
        4 MiB), so that it takes the message in one write: called by the
        outlet before it writes a message larger than :attr:`unsent_room`
        (see ``_NOTSENT_LOWAT`` above for why)."""
        room = min(size, _MAX_LOWAT)
        self.unsent_room = room if room > self.unsent_room else self.unsent_room
        stream = self.stream
        if isinstance(stream, trio.SocketStream) and _NOTSENT_LOWAT is not None:
            with contextlib.suppress(OSError):
                stream.setsockopt(socket.IPPROTO_TCP, _NOTSENT_LOWAT, self.unsent_room)

    def write_now(self) -> None:
        """Hand what the source holds to the kernel now, even mid-batch."""
        if self.state is not _IDLE:
            return  # a writer takes what is queued, in order; or nothing is written
        source = self.source
        assert source is not None
        fd = self.fd
        if fd is None:
            if source.has_output:
                self._start_writer()
            return
        size = source.output_size
        buffers = source.take_buffers()
        if buffers:
            self._writev(fd, buffers, size)
            if self._backlog:
                self._start_writer()

    def write_direct(self, frame: bytes) -> bool:
        """Write one ready-made frame straight to the kernel if nothing waits
        before it (a broadcast to idle connections mostly finds that). False
        if it must be queued in order instead."""
        fd = self.fd
        # Read once per recipient of a broadcast: no property, no Enum lookup
        # (output_size is 0 exactly when the source holds no frame).
        if (fd is None or self._backlog or self.corked or self.state is not _IDLE
                or (self.source is not None and self.source.output_size)):
            return False
        try:
            sent = os.write(fd, frame)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._backlog, self.queued = [frame], len(frame)
            self._fail(exc)
            return True
        if sent < len(frame):
            self._backlog = [memoryview(frame)[sent:]]
            self.queued = len(frame) - sent
            self._start_writer()
        return True

    async def write_raw(self, data: bytes) -> None:
        """Write HTTP bytes (a handshake's answer), ahead of any frame.

        Raises OSError or trio's stream errors if the peer is gone."""
        fd = self.fd
        if fd is not None:
            try:
                sent = os.write(fd, data)
            except BlockingIOError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        await self.stream.send_all(data)

    def _writev(self, fd: int, buffers: Sequence[Any], size: int) -> None:
        """Write ``buffers`` (``size`` bytes) with one system call; keep what
        the kernel did not take as the backlog (memoryviews: no copy)."""
        try:
            if len(buffers) == 1:  # the common case: a plain write() is cheaper
                sent = os.write(fd, buffers[0])
            else:
                if len(buffers) > _MAX_IOV:
                    buffers = [b"".join(buffers)]
                sent = os.writev(fd, buffers)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._backlog, self.queued = buffers, size
            self._fail(exc)
            return
        if sent == size:
            if self._backlog:
                self._backlog, self.queued = _NOTHING, 0
            return
        rest: list[Any] = []
        size = 0
        for buffer in buffers:
            length = len(buffer)
            if sent >= length:
                sent -= length
                continue
            if sent:
                buffer, length, sent = memoryview(buffer)[sent:], length - sent, 0
            rest.append(buffer)
            size += length
        self._backlog, self.queued = rest, size

    def _start_writer(self) -> None:
        if self.state is WriteState.IDLE and self._owner.spawn(self._writer):
            self._move(WriteState.WRITING)

    async def _writer(self) -> None:
        source, fd = self.source, self.fd
        assert source is not None
        try:
            while True:
                if fd is not None:
                    if not self._backlog:
                        size = source.output_size
                        buffers = source.take_buffers()
                        if not buffers:
                            return
                        self._backlog, self.queued = buffers, size
                    await trio.lowlevel.wait_writable(fd)
                    self._writev(fd, self._backlog, self.queued)
                    if self.state is not WriteState.WRITING:
                        return
                else:
                    data = source.take_output()
                    if not data:
                        return
                    self.queued = len(data)
                    await self.stream.send_all(data)
                    self.queued = 0
                self.wake()
        except (OSError, *SOCKET_ERRORS) as exc:
            self._fail(exc)
        finally:
            if self.state is WriteState.WRITING:
                self._move(WriteState.IDLE)
            self.wake()

    def _fail(self, exc: BaseException) -> None:
        if self.state is WriteState.FAILED or self.state is WriteState.CLOSED:
            return
        self._move(WriteState.FAILED)
        self._owner.write_failed(f"write failed: {why(exc)}")

    def flush(self) -> bool:
        """Write what is queued now; True if a writer is still under way
        (then :meth:`drain` waits for it)."""
        if not self.writable:
            return False
        self.write_now()
        return self.state is WriteState.WRITING

    async def drain(self) -> None:
        """Wait for a writer under way to finish (bound it with a cancel
        scope). Call :meth:`flush` first: most closes need no wait, and no
        scope (a cancel scope per close costs ~4% of a handshake)."""
        while self.state is WriteState.WRITING:
            await self.wait()

    async def wait(self) -> None:
        """Park until :meth:`wake` (the caller re-checks its own condition)."""
        lot = self._lot
        if lot is None:
            lot = self._lot = trio.lowlevel.ParkingLot()
        await lot.park()

    def wake(self) -> None:
        if self._lot is not None:
            self._lot.unpark_all()

    # -- closing --------------------------------------------------------

    async def close_now(self) -> None:
        """Close the stream at once (no close_notify, no waiting)."""
        if self.state is WriteState.CLOSED:
            return
        self._move(WriteState.CLOSED)
        stream = self.stream
        if isinstance(stream, trio.SocketStream):
            stream.socket.close()  # synchronous: no cancel scope needed
        else:
            await trio.aclose_forcefully(stream)

    async def close_gracefully(self, *, client: bool, grace: float | None,
                               scope: trio.CancelScope) -> None:
        """Half-close, read to the peer's end of stream, close.

        On plain TCP the wait is bounded by the connection's own ``scope``
        (its deadline is brought forward to ``grace`` seconds from now): if the peer never
        ends its stream, the scope ends the connection."""
        if self.state is WriteState.CLOSED:
            return
        stream = self.stream
        if isinstance(stream, trio.SocketStream) and self.fd is not None:
            with contextlib.suppress(OSError):
                stream.socket.shutdown(socket.SHUT_WR)
            # Mostly the peer has closed by the time this task runs again:
            # then no deadline is needed (setting one costs ~1.5% of a handshake).
            await checkpoint()
            if self.read_ready() != b"":
                if grace is not None:
                    scope.deadline = min(scope.deadline, trio.current_time() + grace)
                while await self.read():
                    pass
            await self.close_now()
            return
        half_close = isinstance(stream, trio.abc.HalfCloseableStream)
        with trio.move_on_after(or_inf(grace)) as wait:
            try:
                if half_close:
                    await stream.send_eof()  # type: ignore[attr-defined]
                # RFC 6455 7.1.1: the server closes the TCP connection first,
                # so a client waits for it. TLS can't half-close: a TLS server
                # closes at once (close_notify) rather than wait for the client.
                if half_close or client:
                    while await stream.receive_some(self._base_read):
                        pass
            except (*SOCKET_ERRORS, trio.BusyResourceError):
                pass
        self._move(WriteState.CLOSED)
        if wait.cancelled_caught:
            await trio.aclose_forcefully(stream)
            return
        with trio.move_on_after(1) as closing:
            with contextlib.suppress(*SOCKET_ERRORS):
                await stream.aclose()
        if closing.cancelled_caught:
            await trio.aclose_forcefully(stream)

    # -- the socket underneath -----------------------------------------

    def socket(self) -> trio.socket.SocketType | None:
        stream = self.stream
        if isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        return stream.socket if isinstance(stream, trio.SocketStream) else None

    def addresses(self) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
        """(peer, local) addresses, ``None`` where unknown (not a socket)."""
        sock = self.socket()
        if sock is None:
            return None, None
        try:
            peer, local = sock.getpeername(), sock.getsockname()
        except OSError:
            return None, None
        return (peer[0], peer[1]), (local[0], local[1])

    def peer(self) -> str:
        peer = self.addresses()[0]
        return "?" if peer is None else f"{peer[0]}:{peer[1]}"


def tune_socket(stream: trio.abc.Stream, *, nodelay: bool) -> None:
    if isinstance(stream, trio.SocketStream) and not nodelay:
        # trio turns Nagle off for every SocketStream; turn it back on.
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, False)


def or_inf(seconds: float | None) -> float:
    return math.inf if seconds is None else seconds


def why(exc: BaseException) -> str:
    cause = exc.__cause__
    return f"{exc} ({cause})" if cause is not None else str(exc) or type(exc).__name__


async def _read_into(transport: Transport, fd: int, sink: MessageBufferProtocol) -> ReadInto:
    """The body of :meth:`Transport.read_into` on plain TCP (outside the
    class to keep it within its size)."""
    await trio.lowlevel.checkpoint()  # as read() does: a peer must not starve the others
    while True:
        try:
            size = sink.read_from(fd, _MAX_SINK_READ)
        except BlockingIOError:
            pass
        except OSError as exc:
            transport._owner.lost(f"read failed: {exc}")
            return ReadInto(0)
        else:
            return ReadInto(size)
        try:
            await trio.lowlevel.wait_readable(fd)
        except (OSError, trio.ClosedResourceError) as exc:
            transport._owner.lost(f"read failed: {exc}")
            return ReadInto(0)
