"""The Redis backplane's health: its states, and which exceptions mean that
Redis (or the network to it) failed rather than a bug.

Imported by ``_hub/redis.py`` alone (``coredis`` is an optional dependency).
"""

from __future__ import annotations

import enum

import coredis.exceptions
import trio

__all__ = ["State", "failure"]


class State(enum.Enum):
    CONNECTING = "connecting"
    UP = "up"
    #: Redis failed (unreachable, or a command timed out): degraded until the
    #: subscriber re-subscribed, or, if its subscription held, until the
    #: heartbeat is answered again.
    DOWN = "down"
    STOPPED = "stopped"


def failure(exc: BaseException) -> BaseException | None:
    """The Redis or network failure inside ``exc`` (an exception group of
    them too), or ``None`` if it is something else (a bug: let it raise)."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = [failure(sub) for sub in exc.exceptions]
        return leaves[0] if leaves and all(leaves) else None
    if isinstance(exc, (coredis.exceptions.RedisError, OSError, TimeoutError,
                        trio.BrokenResourceError, trio.ClosedResourceError, EOFError)):
        return exc
    return None
