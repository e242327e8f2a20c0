"""One worker of a ``--workers N`` group: its seat, its link to the supervisor.

The supervisor (``_supervisor.py``) runs each worker as ``python -m wskit
serve …`` with one hidden option, ``--worker SEAT``: which worker it is
(``index/count``), the file descriptor of its control socket, and those of
the sockets that hold the port. A listening one is served as it is (every
worker accepts from it); a bound one that does not listen is the
``SO_REUSEPORT`` group the worker joins with a listening socket of its own
(see ``_supervisor.py`` for why).

The control socket (one end of a ``socketpair``) is the whole protocol:

- supervisor -> worker, once at start: a 4-byte big-endian length and that
  many bytes of payload (a pickled :class:`wskit.Settings` when the group was
  started from Python; empty from the command line, whose options the worker
  parses itself);
- worker -> supervisor: ``ready`` once it listens (a worker that exits before
  saying so failed at start-up, which is what the crash-loop bound counts);
- the supervisor closing its end means "stop": the worker shuts down
  gracefully (1001 to every client, ``on_shutdown``). The supervisor dying,
  even by SIGKILL, closes it too, so no worker outlives its supervisor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pickle
import socket
import struct
import sys
import threading
from typing import Any

from ._errors import Error, ErrorKind
from ._settings import Settings
from ._websocket import WebSocket

__all__ = ["REUSE_PORT", "WorkerLink", "WorkerSeat", "bind", "log_format", "partial_reason",
           "rooms_need_backplane", "tag_records"]

log = logging.getLogger("wskit.supervisor")

_LENGTH = struct.Struct("!I")
READY = b"ready\n"
#: How long a starting worker waits for its payload (sent right after the spawn).
_PAYLOAD_TIMEOUT = 30.0


#: Whether each worker listens on a socket of its own in one ``SO_REUSEPORT``
#: group (the kernel spreads connections evenly across them), rather than
#: all accepting from one shared socket. Linux only: elsewhere the option
#: exists but does not spread connections.
REUSE_PORT = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")

#: Pending connections per listening socket (the kernel caps it at somaxconn).
BACKLOG = 4096


def bind(family: int, address: Any, *, reuse_port: bool, listen: bool) -> socket.socket:
    """A TCP socket bound to ``address``; raises ``OSError``."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        if listen:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


@dataclasses.dataclass(frozen=True)
class WorkerSeat:
    """Which worker this is and what it inherited, as ``--worker`` carries it:
    ``"index/count:control_fd:listen_fd,listen_fd"`` (``index`` from 1)."""

    index: int
    count: int
    control_fd: int
    listen_fds: tuple[int, ...]

    def __str__(self) -> str:
        fds = ",".join(map(str, self.listen_fds))
        return f"{self.index}/{self.count}:{self.control_fd}:{fds}"

    @classmethod
    def parse(cls, text: str) -> WorkerSeat:
        try:
            place, control, fds = text.split(":")
            index, count = place.split("/")
            seat = cls(int(index), int(count), int(control),
                       tuple(int(fd) for fd in fds.split(",")))
        except ValueError:
            seat = None
        if seat is None or not 1 <= seat.index <= seat.count:
            raise Error(f"--worker {text!r}: this option is for the supervisor's own use "
                        "(run 'wskit serve --workers N' instead)", ErrorKind.USAGE)
        return seat

    @property
    def name(self) -> str:
        """``worker 2/4``: how the logs name it."""
        return f"worker {self.index}/{self.count}"


def log_format(seat: WorkerSeat | None) -> str:
    """The log line format: a worker's lines carry its index and pid, the
    supervisor's say so, so that an operator can tell the processes apart
    in one stream."""
    tag = f"[{seat.name} pid %(process)d] " if seat is not None else \
        "[supervisor pid %(process)d] "
    return f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s"


def tag_records(seat: WorkerSeat | None) -> None:
    """Give every log record of this process ``worker`` (``"2/4"``, or
    ``"supervisor"``) and ``pid`` attributes: what :func:`log_format` shows,
    and fields of their own for a structured (JSON) formatter."""
    worker = f"{seat.index}/{seat.count}" if seat is not None else "supervisor"
    pid = os.getpid()
    make = logging.getLogRecordFactory()

    def tagged(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.worker = worker
        record.pid = pid
        return record

    logging.setLogRecordFactory(tagged)


def partial_reason(count: int) -> str:
    """What a registry that sees one worker's clients says when asked for all."""
    return (f"across {count} workers needs a shared backplane: add --backplane redis://… "
            "(Settings(backplane=…) from Python), or use --workers 1 (without a backplane "
            "each worker reaches only its own clients)")


def rooms_need_backplane(count: int) -> str:
    """The refusal of rooms in a group without a backplane (a usage error)."""
    return (f"rooms across {count} workers need a shared backplane: add --backplane "
            "redis://…, or use --workers 1")


class WorkerLink:
    """The worker's end of its control socket (module docstring)."""

    def __init__(self, seat: WorkerSeat) -> None:
        self.seat = seat
        self._sock = socket.socket(fileno=seat.control_fd)
        self._sock.set_inheritable(False)  # not for the application's own children

    def payload(self) -> Settings | None:
        """The Settings the supervisor sent (``None``: none, use the options).

        Blocks until the supervisor has written it (right after the spawn)."""
        self._sock.settimeout(_PAYLOAD_TIMEOUT)
        try:
            size = _LENGTH.unpack(self._receive(_LENGTH.size))[0]
            data = self._receive(size) if size else b""
        except (OSError, struct.error) as exc:
            raise Error(f"{self.seat.name}: no start message from the supervisor: {exc}",
                        ErrorKind.IO) from exc
        finally:
            self._sock.settimeout(None)
        if not data:
            return None
        # The bytes come from our own parent over a socketpair only it holds.
        settings = pickle.loads(data)
        if not isinstance(settings, Settings):
            raise Error(f"{self.seat.name}: the supervisor sent {type(settings).__name__}, "
                        "not Settings", ErrorKind.INTERNAL)
        return settings

    def _receive(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._sock.recv(size - len(data))
            if not chunk:
                raise OSError("the supervisor closed the control socket")
            data += chunk
        return data

    def listening_sockets(self) -> list[socket.socket]:
        """The sockets to serve: the supervisor's own when they listen (shared
        by every worker), else one of ours bound beside each of them in its
        ``SO_REUSEPORT`` group. Raises ``Error(IO)``."""
        sockets = []
        for fd in self.seat.listen_fds:
            inherited = socket.socket(fileno=fd)
            inherited.set_inheritable(False)
            if inherited.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                sockets.append(inherited)
                continue
            with inherited:
                address = inherited.getsockname()
                try:
                    sockets.append(bind(inherited.family, address, reuse_port=True,
                                        listen=True))
                except OSError as exc:
                    raise Error(f"{self.seat.name}: cannot listen on {address}: {exc}",
                                ErrorKind.IO) from exc
        return sockets

    def ready(self, ws: WebSocket) -> None:
        """Tell the supervisor we listen; shut ``ws`` down when it closes the link."""
        with contextlib.suppress(OSError):  # it is gone: the watcher sees that too
            self._sock.sendall(READY)
        threading.Thread(target=self._watch, args=(ws,), name="wskit-worker-link",
                         daemon=True).start()

    def _watch(self, ws: WebSocket) -> None:
        with contextlib.suppress(OSError):
            while self._sock.recv(4096):
                pass
        log.info("%s: the supervisor asks to stop (or is gone): shutting down",
                 self.seat.name)
        ws.shutdown()  # thread-safe; 1001 to every client, on_shutdown hooks
