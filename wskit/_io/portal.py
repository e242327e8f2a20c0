"""The thread bridge: which thread is the WebSocket's, and run this in it.

Every ``Sender``, ``Comms`` and room method may be called from any thread.
In the WebSocket's own Trio thread they act at once; from another thread the
work is handed over with ``TrioToken.run_sync_soon``, which keeps the order
of the calls made by one thread.

What other threads hand over is bounded in bytes (``max_thread_queue``, all
connections together): data waiting for the Trio thread is outside every
per-connection queue limit, so without a bound a fast producer thread would
grow the process without limit. A thread whose hand-off would go over the
bound waits (it is a thread: it can block) until the Trio thread has taken
enough; a single hand-off larger than the bound waits for an empty backlog
and then goes through alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import trio

from .._errors import Error, ErrorKind

__all__ = ["Portal"]

log = logging.getLogger("wskit")


class Portal:
    """Runs calls from any thread in one Trio thread, in order, bounded in bytes."""

    __slots__ = ("_cond", "_limit", "_pending", "_token", "thread_id")

    def __init__(self, max_pending: int | None) -> None:
        #: The Trio thread's ident, ``None`` while not running. Read on the
        #: hot path (``Sender.send``): compare with ``threading.get_ident()``.
        self.thread_id: int | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._limit = max_pending
        self._pending = 0
        self._cond = threading.Condition(threading.Lock())

    def start(self) -> None:
        """Bind to the calling Trio thread (the WebSocket's)."""
        self.thread_id = threading.get_ident()
        self._token = trio.lowlevel.current_trio_token()

    def stop(self) -> None:
        """The Trio thread is going away: later hand-offs raise, waiting ones wake."""
        with self._cond:
            self._token = None
            self._cond.notify_all()

    @property
    def running(self) -> bool:
        return self._token is not None

    @property
    def pending_bytes(self) -> int:
        """Bytes handed over by other threads and not yet taken."""
        return self._pending

    def in_trio_thread(self) -> bool:
        return threading.get_ident() == self.thread_id

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` now if in the Trio thread, else soon in it, in order."""
        if threading.get_ident() == self.thread_id:
            fn(*args)
        else:
            self.run_soon(fn, *args)

    def run_soon(self, fn: Callable[..., Any], *args: Any, size: int = 0) -> None:
        """From another thread: run ``fn(*args)`` in the Trio thread soon.

        ``size`` is the number of bytes the call carries; it counts against
        ``max_thread_queue`` until the call has run. Blocks while that bound
        would be exceeded. Raises ``Error(QUEUE)`` if the WebSocket is not
        running (never started, or finished).
        """
        cond = self._cond
        with cond:
            if size:
                limit = self._limit
                while (self._token is not None and limit is not None and self._pending
                       and self._pending + size > limit):
                    cond.wait()
                self._pending += size
            token = self._token
            if token is None:
                self._pending -= size
                raise Error("the WebSocket is not running (it has not started, or it has "
                            "finished): nothing can be sent through it", ErrorKind.QUEUE)
        try:
            token.run_sync_soon(self._run, fn, args, size)
        except trio.RunFinishedError:
            self._release(size)
            raise Error("the WebSocket is no longer running", ErrorKind.QUEUE) from None

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], size: int) -> None:
        # In the Trio thread on behalf of another thread: an exception here
        # would crash the whole run, so it is logged instead.
        try:
            fn(*args)
        except Error as err:
            log.warning("call from another thread failed: %s", err)
        except Exception:
            log.exception("call from another thread failed")
        finally:
            if size:
                self._release(size)

    def _release(self, size: int) -> None:
        with self._cond:
            self._pending -= size
            self._cond.notify_all()
