"""The ``wskit`` command (also ``python -m wskit``).

::

    wskit echo [--host H] [--port P]            an echo server
    wskit client URL                             stdin lines out, messages in
    wskit serve module:factory [options]         serve any factory
    wskit dev module:factory [options]           the same, restarted on changes
    wskit serve module:RoomService --rooms       room services as wskit.Rooms (also dev)

Exit status: 0 on success (a server stopped by Ctrl-C/SIGTERM, a client whose
connection closed normally); 1 when a client can't connect or its connection
ends abnormally, or the served module raised on import; 2 for usage errors
(bad arguments, a module or attribute that does not exist, a port in use,
unreadable TLS files), with one line on stderr.

This package is the command line's user interface: it prints to stdout and
stderr. Everything it does goes through the public API. Its modules:

- ``options``: Settings as options, the shared number parsers, UsageError;
- ``serve``: ``echo`` and ``serve``, loading ``module:attribute``;
- ``logs``: ``--log-format`` (text, or one JSON object per line);
- ``rooms``: ``--rooms`` and its options;
- ``workers``: ``serve --workers N``, its supervisor and workers;
- ``dev``: the restarting child process;
- ``client``: the interactive client;
- ``parser``: the argument parser, one subcommand per verb.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .options import UsageError
from .parser import build_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wskit`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    # As given, for the processes that re-run it (``serve --workers N``).
    args.argv = list(sys.argv[1:] if argv is None else argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except UsageError as err:
        print(f"wskit: error: {err}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:  # before the server installed its own handler
        return 130
