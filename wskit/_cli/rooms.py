"""``--rooms``: serve a room service as ``wskit.Rooms`` (``serve`` and ``dev``)."""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import Error
from .._handler import Factory, FactoryLike
from ..rooms import Rooms
from .options import UsageError, non_negative, size


def add_rooms_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "rooms", "serve a wskit.RoomService class (or any (room_id, ctx) -> service "
                 "callable) as wskit.Rooms: /ws/{room}, /status, /rooms")
    group.add_argument("--rooms", action="store_true",
                       help="wrap the target in wskit.Rooms")
    group.add_argument("--grace", type=non_negative, metavar="SECONDS",
                       default=argparse.SUPPRESS,
                       help="seconds an empty room is kept for a rejoin (default 10)")
    group.add_argument("--slow-client", choices=["disconnect", "drop"],
                       default=argparse.SUPPRESS,
                       help="a client too slow to read: close it with 1008 (default) or "
                            "drop its messages")
    group.add_argument("--max-client-queue", type=size, metavar="SIZE",
                       default=argparse.SUPPRESS,
                       help="bytes waiting for a client before it counts as slow "
                            "(default 256k)")


_ROOMS_OPTIONS = (("grace", "--grace"), ("slow_client", "--slow-client"),
                  ("max_client_queue", "--max-client-queue"))


def rooms_argv(args: argparse.Namespace) -> list[str]:
    """The rooms options given, as arguments again (for ``dev``'s child)."""
    values = vars(args)
    argv = ["--rooms"] if values.get("rooms") else []
    for field, flag in _ROOMS_OPTIONS:
        if field in values:
            argv += [flag, str(values[field])]
    return argv


def rooms_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``wskit.Rooms`` options given; they need ``--rooms``."""
    values = vars(args)
    given = {field: values[field] for field, _ in _ROOMS_OPTIONS if field in values}
    if given and not values.get("rooms"):
        flags = ", ".join(flag for field, flag in _ROOMS_OPTIONS if field in given)
        raise UsageError(f"{flags} need --rooms")
    return given


def wrap_rooms(factory: FactoryLike, args: argparse.Namespace) -> FactoryLike:
    """``--rooms``: the loaded service inside ``wskit.Rooms``."""
    given = rooms_options(args)
    if not args.rooms:
        return factory
    if isinstance(factory, Factory):
        raise UsageError(f"{args.target} is a {type(factory).__name__}, not a room service: "
                         "--rooms takes a wskit.RoomService class (serve a wskit.Rooms "
                         "instance without --rooms)")
    try:
        return Rooms(factory, **given)  # type: ignore[arg-type]
    except Error as err:
        raise UsageError(str(err)) from err


def rooms_endpoints(rooms: Rooms, secure: bool, host: str, port: int) -> list[str]:
    """What a ``Rooms`` server answers, for the start-up banner."""
    where = f"{host}:{port}"
    web = f"{'https' if secure else 'http'}://{where}"
    lines = [f"rooms: {'wss' if secure else 'ws'}://{where}{rooms.path}/{{room}} (WebSocket, "
             "one room per name)"]
    if rooms.default_room is not None:
        lines[0] += f"; {rooms.path} joins {rooms.default_room!r}"
    if rooms.status_path is not None:
        lines.append(f"rooms: {web}{rooms.status_path} (health check: 'ok')")
    if rooms.rooms_path is not None:
        lines.append(f"rooms: {web}{rooms.rooms_path} (JSON: every room's counters)")
    if rooms.page is not None:
        lines.append(f"rooms: {web}/ (the page)")
    return lines
