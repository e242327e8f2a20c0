"""Calling a handler's hooks: which ones it has, one at a time, sync or async.

:class:`Hooks` resolves once per connection which hook methods a handler
really implements, so the driver skips the others at no cost. A base class
marks its do-nothing defaults with :func:`default_hook` (``wskit.Handler``
does); a hook still marked as a default is treated as absent.

:class:`Dispatcher` serialises one connection's hook calls: a sync hook runs
to completion without yielding to Trio, and while an ``async`` hook is
awaited every other dispatch (a timer, shutdown, the next message) waits its
turn. Nothing a hook raises escapes: it is logged, handed to ``on_error`` as
``Error(kind=CUSTOM)`` with the original as ``__cause__``, and the owner's
``on_failure`` closes that one connection (with 1011).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from types import FunctionType, MethodType
from typing import Any, Protocol, TypeVar

import trio

from .._errors import Error, ErrorKind

__all__ = ["HOOK_NAMES", "Dispatcher", "Hooks", "class_hooks", "default_hook", "hook_name",
           "is_async", "resolve"]

HOOK_NAMES = (
    "on_open",
    "on_message",
    "on_close",
    "on_error",
    "on_request",
    "build_request",
    "on_response",
    "on_timeout",
    "on_ping",
    "on_pong",
    "on_shutdown",
    "on_reconnecting",
)

_DEFAULT_MARK = "__wskit_default_hook__"
F = TypeVar("F", bound=Callable[..., Any])


def default_hook(fn: F) -> F:
    """Mark a base class's do-nothing hook: handlers that keep it skip it."""
    setattr(fn, _DEFAULT_MARK, True)
    return fn


async def resolve(value: Any) -> Any:
    """The value of a hook that may be ``def`` or ``async def``: the one place
    that decides whether a hook's result must be awaited."""
    if inspect.isawaitable(value):
        return await value
    return value


def is_async(fn: Callable[..., Any] | None) -> bool:
    return fn is not None and inspect.iscoroutinefunction(fn)


def hook_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


_class_caches: dict[tuple[str, ...], dict[type, tuple[tuple[str, ...], bool]]] = {}


def class_hooks(cls: type, names: tuple[str, ...] = HOOK_NAMES) -> tuple[tuple[str, ...], bool]:
    """(which of ``names`` ``cls`` implements, whether it derives from a base
    that marks its defaults). Resolved once per class: the one place that
    decides which hooks a handler (or a room service) has."""
    cache = _class_caches.get(names)
    if cache is None:
        cache = _class_caches[names] = {}
    found = cache.get(cls)
    if found is None:
        have: list[str] = []
        based = False
        for name in names:
            attr = getattr(cls, name, None)
            if attr is None:
                continue
            if getattr(attr, _DEFAULT_MARK, False):
                based = True
            else:
                have.append(name)
        found = cache[cls] = (tuple(have), based)
    return found


class Hooks:
    """The hooks one handler really implements (``None`` for the others)."""

    __slots__ = ("handler", *HOOK_NAMES)

    handler: Any
    on_open: Callable[[Any], Any] | None
    on_message: Callable[[Any], Any] | None
    on_close: Callable[[Any, str], Any] | None
    on_error: Callable[[Error], Any] | None
    on_request: Callable[[Any], Any] | None
    build_request: Callable[[str], Any] | None
    on_response: Callable[[Any], Any] | None
    on_timeout: Callable[[Any], Any] | None
    on_ping: Callable[[bytes], Any] | None
    on_pong: Callable[[bytes], Any] | None
    on_shutdown: Callable[[], Any] | None
    on_reconnecting: Callable[[int, float, Error], Any] | None

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        cls = type(handler)
        if cls is FunctionType or cls is MethodType:  # the closure factory's case
            names: tuple[str, ...] = ()
            based = False
        else:
            names, based = class_hooks(cls)
            if not based:  # any object: its hooks may live on the instance
                names = tuple(n for n in HOOK_NAMES if hasattr(handler, n))
        for name in HOOK_NAMES:
            setattr(self, name, getattr(handler, name) if name in names else None)
        if not names and not based:
            if not callable(handler):
                raise Error(
                    f"the factory returned {handler!r}: expected a wskit.Handler, an "
                    "object with on_* methods, or a callable taking each message",
                    ErrorKind.USAGE,
                )
            self.on_message = handler


class Owner(Protocol):
    """The connection whose hooks are dispatched."""

    id: int

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]: ...

    def hook_failed(self) -> None:
        """React to a hook that raised (the driver closes with 1011); runs
        after ``on_error``."""


class Dispatcher:
    """One connection's hook calls, one at a time, in order."""

    __slots__ = ("_lot", "awaiting", "hooks", "owner")

    def __init__(self, hooks: Hooks, owner: Owner) -> None:
        self.hooks = hooks
        self.owner = owner
        #: The ``async`` hook being awaited, by name; every other dispatch
        #: waits until it is done. ``None`` when the turn is free.
        self.awaiting: str | None = None
        # Made on first use: most connections never wait for a turn.
        self._lot: trio.lowlevel.ParkingLot | None = None

    async def call(self, fn: Callable[..., Any] | None, *args: Any) -> None:
        """Call one hook, after any ``async`` hook still running."""
        if fn is None:
            return
        if self.awaiting is not None:
            await self.wait_turn()
        try:
            result = fn(*args)
        except Exception as exc:
            await self.failed(hook_name(fn), exc)
            return
        if result is not None and inspect.isawaitable(result):
            await self.await_hook(hook_name(fn), result)

    async def wait_turn(self) -> None:
        while self.awaiting is not None:
            lot = self._lot
            if lot is None:
                lot = self._lot = trio.lowlevel.ParkingLot()
            await lot.park()

    async def await_hook(self, name: str, awaitable: Awaitable[Any]) -> None:
        """Await an ``async`` hook's result; it holds the turn until done."""
        self.awaiting = name
        failure: Exception | None = None
        try:
            await awaitable
        except Exception as exc:
            failure = exc
        finally:
            self._release()
        if failure is not None:
            await self.failed(name, failure)

    def _release(self) -> None:
        self.awaiting = None
        if self._lot is not None:
            self._lot.unpark_all()

    async def failed(self, name: str, exc: Exception) -> None:
        """A hook raised: log it, tell ``on_error``, then the owner reacts."""
        self.owner.log.error("connection %d: %s raised %s: %s", self.owner.id, name,
                             type(exc).__name__, exc, exc_info=exc)
        if name != "on_error":
            await self.error(self.wrap(name, exc), log=False)
        self.owner.hook_failed()

    def wrap(self, name: str, exc: Exception) -> Error:
        error = Error(f"{name} raised {type(exc).__name__}: {exc}", ErrorKind.CUSTOM,
                      connection_id=self.owner.id)
        error.__cause__ = exc
        return error

    async def error(self, error: Error, *, log: bool = True) -> None:
        """Hand ``error`` to ``on_error``; if that raises, it is only logged."""
        if log and error.kind is ErrorKind.CUSTOM:
            self.owner.log.error("connection %d: %s", self.owner.id, error)
        on_error = self.hooks.on_error
        if on_error is None:
            return
        if self.awaiting is not None:
            await self.wait_turn()
        try:
            result = on_error(error)
            if result is not None and inspect.isawaitable(result):
                self.awaiting = "on_error"
                try:
                    await result
                finally:
                    self._release()
        except Exception as exc:
            self.log_only(exc, "on_error")

    def log_only(self, exc: Exception, name: str) -> None:
        self.owner.log.error("connection %d: %s raised %s: %s", self.owner.id, name,
                             type(exc).__name__, exc, exc_info=exc)
