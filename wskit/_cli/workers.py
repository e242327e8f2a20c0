"""``wskit serve --workers N``: the supervisor, and the workers it starts.

``serve`` with ``--workers 1`` (the default) is the single process it always
was. With N > 1 this process becomes the supervisor (``wskit._supervisor``):
it checks what it can without importing the application (options, TLS
files, the port, rooms without a backplane), binds the port and re-runs the
same command line N times with ``--worker SEAT`` appended; each of those
runs :func:`serve_worker`. Options it does not know about (``--backplane``
included) reach every worker unchanged.
"""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from .._errors import Error
from .._supervisor import Supervisor, open_sockets, stop_timeout_for
from .._websocket import WebSocket
from .._worker import (
    WorkerLink,
    WorkerSeat,
    log_format,
    partial_reason,
    rooms_need_backplane,
    tag_records,
)
from ..rooms import Rooms
from .logs import setup_logging
from .options import UsageError, count, settings_from
from .rooms import rooms_options, wrap_rooms
from .serve import cmd_serve as serve_in_this_process
from .serve import import_app, server_tls, split_target

__all__ = ["add_workers_options", "cmd_serve"]

log = logging.getLogger("wskit.supervisor")


def add_workers_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "workers", "serve one port from several processes (one host, many cores)")
    group.add_argument("--workers", type=count, default=1, metavar="N",
                       help="worker processes sharing the port, under a supervisor that "
                            "restarts them (default 1: this process serves, no supervisor)")
    group.add_argument("--worker", metavar="SEAT", help=argparse.SUPPRESS)


def cmd_serve(args: argparse.Namespace) -> int:
    """``wskit serve``: one process, a supervisor, or one of its workers."""
    if args.worker is not None:
        return serve_worker(args)
    if args.workers > 1:
        return supervise(args)
    return serve_in_this_process(args)


def supervise(args: argparse.Namespace) -> int:
    """The supervisor: check, bind, run N workers until SIGINT/SIGTERM."""
    workers: int = args.workers
    split_target(args.target)
    rooms_options(args)
    settings = settings_from(args)
    server_tls(args)  # bad TLS files: one error now, not one per worker
    if args.rooms and settings.backplane is None:
        raise UsageError(rooms_need_backplane(workers))
    setup_logging(args.log_level, args.log_format, log_format(None))
    tag_records(None)
    try:
        sockets = open_sockets(args.host, args.port)
    except Error as err:
        raise UsageError(str(err)) from err
    port = sockets[0].getsockname()[1]
    log.info("serving %s on %s:%d with %d workers", args.target, args.host, port, workers)
    # The same command line again, for every worker: what this process does
    # not interpret (--backplane, options added later) reaches them as given.
    command = [sys.executable, "-m", "wskit", *args.argv]
    supervisor = Supervisor(command, workers, sockets,
                            stop_timeout=stop_timeout_for(settings.close_timeout))
    try:
        status = supervisor.run()
    finally:
        for sock in sockets:
            sock.close()
    if status == 0:
        log.info("stopped")
    return status


def serve_worker(args: argparse.Namespace) -> int:
    """One worker: serve the supervisor's sockets until it says stop."""
    try:
        seat = WorkerSeat.parse(args.worker)
    except Error as err:
        raise UsageError(str(err)) from err
    setup_logging(args.log_level, args.log_format, log_format(seat))
    tag_records(seat)
    link = WorkerLink(seat)
    settings = link.payload() or settings_from(args)
    loaded = import_app(args.target)
    if loaded is None:
        return 1
    factory = wrap_rooms(loaded, args)
    shared = settings.backplane is not None or seat.count == 1
    if not shared and isinstance(factory, Rooms):
        raise UsageError(rooms_need_backplane(seat.count))
    ssl_context = server_tls(args)
    try:
        sockets = link.listening_sockets()
    except Error as err:
        raise UsageError(str(err)) from err

    async def run() -> None:
        async with WebSocket(factory, settings) as ws:
            if not shared:
                ws.hub.registry.partial = partial_reason(seat.count)
            for sock in sockets:
                await ws.listen(sock, ssl_context=ssl_context)
            link.ready(ws)

    trio.run(run)
    return 0
