"""The ``wskit`` argument parser: one subcommand per verb, each run by its module."""

from __future__ import annotations

import argparse

from .. import __version__
from .client import cmd_client
from .dev import cmd_dev
from .options import add_settings, count, proxy_option, seconds
from .rooms import add_rooms_options
from .serve import add_server_options, cmd_echo
from .workers import add_workers_options, cmd_serve


def build_parser() -> argparse.ArgumentParser:
    """The ``wskit`` argument parser, with one subcommand per verb."""
    parser = argparse.ArgumentParser(
        prog="wskit",
        description="wskit: callback-style WebSocket servers and clients on Trio.",
        epilog="Run 'wskit COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"wskit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    echo = commands.add_parser(
        "echo", help="run an echo server",
        description="Run an echo server: every message goes back to its sender. "
                    "Ctrl-C closes every connection with 1001 and exits 0.")
    add_server_options(echo)
    echo.set_defaults(run=cmd_echo)

    client = commands.add_parser(
        "client", help="an interactive client (stdin lines out, messages in)",
        description="Connect to URL. Each line of stdin is sent as a text message; each "
                    "message received is printed on stdout (binary as hex). On a terminal, "
                    "messages show as '< text' after what you typed at the '> ' prompt, "
                    "with control characters escaped (a newline shows as \\n; nothing a "
                    "server sends can colour or move anything), and a message that arrives "
                    "while you type goes above your line. In a pipe, messages are written "
                    "as they are, one per line. Status goes to stderr. At the end of stdin, "
                    "and on /close, the client waits for the answers in flight (see "
                    "--linger), closes (1000 by default) and exits 0 once the closing "
                    "handshake is done. Commands: /close [CODE [REASON]], /ping [TEXT], "
                    "//TEXT sends /TEXT, /help.",
        epilog="example: printf 'hello\\nworld\\n' | wskit client ws://127.0.0.1:3012")
    client.add_argument("url", help="ws:// or wss:// URL")
    client.add_argument("--header", action="append", metavar="'NAME: VALUE'",
                        help="extra handshake header (repeatable)")
    client.add_argument("--subprotocol", action="append", metavar="NAME",
                        help="offer this subprotocol (repeatable)")
    client.add_argument("--origin", help="send this Origin header")
    client.add_argument("--ca-file", metavar="FILE",
                        help="trust this CA bundle (PEM) for wss:// instead of the system's")
    client.add_argument("--proxy", dest="setting_proxy", type=proxy_option, metavar="URL",
                        default=argparse.SUPPRESS,
                        help="HTTP proxy, http://[user:password@]host:port; 'none' connects "
                             "directly (default 'auto': the https_proxy, http_proxy and "
                             "no_proxy environment variables)")
    client.add_argument("--linger", type=float, default=0.5, metavar="SECONDS",
                        help="at the end of stdin or on /close, wait until the server has "
                             "read everything "
                             "and no message came for this long before closing "
                             "(default %(default)s; 0 closes at once)")
    client.add_argument("--reconnect", action="store_true",
                        help="when the connection drops (or cannot be opened), connect again "
                             "with backoff, forever; lines typed meanwhile are sent once "
                             "connected; each reconnect is reported on stderr. Close codes "
                             "1008 and HTTP 400/401/403/404/410 still end it")
    client.add_argument("--reconnect-max-delay", type=seconds, metavar="SECONDS",
                        help="longest wait between two attempts (default 60; implies "
                             "--reconnect)")
    client.add_argument("--reconnect-attempts", type=count, metavar="N",
                        help="give up after N failed attempts in a row (default: never; "
                             "implies --reconnect)")
    add_settings(client, server=False)
    client.set_defaults(run=cmd_client)

    target_help = ("module:attribute of a factory: a function or closure taking a Sender, "
                   "a wskit.Handler subclass, a wskit.Factory (class or instance) or a "
                   "wskit.Router (with --rooms: a wskit.RoomService class); the module is "
                   "imported with the current directory first on sys.path")
    serve = commands.add_parser(
        "serve", help="serve a factory from an importable module",
        description="Serve the factory named by module:attribute (like uvicorn). Ctrl-C or "
                    "SIGTERM closes every connection with 1001 and exits 0.",
        epilog="example: wskit serve examples.router:router --port 8000 "
               "--max-message-size 64k")
    serve.add_argument("target", metavar="module:factory", help=target_help)
    add_server_options(serve)
    add_rooms_options(serve)
    add_workers_options(serve)
    serve.add_argument("--stop-on-eof", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(run=cmd_serve)

    dev = commands.add_parser(
        "dev", help="serve a factory and restart it when a source file changes",
        description="Like 'serve', in a child process that is restarted (on the same port) "
                    "whenever a .py file of the module's top-level package (for a single-file "
                    "module: of its folder) changes (mtimes are polled). Open connections get "
                    "1001 at each restart.",
        epilog="example: wskit dev myapp:factory --port 8000")
    dev.add_argument("target", metavar="module:factory", help=target_help)
    add_server_options(dev)
    add_rooms_options(dev)
    dev.add_argument("--watch", action="append", metavar="PATH",
                     help="also restart when a file under PATH changes (repeatable)")
    dev.add_argument("--poll-interval", type=seconds, default=0.5, metavar="SECONDS",
                     help="seconds between two scans of the files (default %(default)s)")
    dev.add_argument("--stop-timeout", type=seconds, default=10.0, metavar="SECONDS",
                     help="seconds a stopping server may take before it is killed "
                          "(default %(default)s)")
    dev.set_defaults(run=cmd_dev)
    return parser
