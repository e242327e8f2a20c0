"""Settings as command-line options, and the number parsers every command shares.

:class:`UsageError` is how any command reports the user's mistake (exit
status 2, one line).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .._errors import Error
from .._settings import Settings

DEFAULT_PORT = 3012


class UsageError(Exception):
    """A mistake in what the user asked for: exit status 2, one line."""


# ----------------------------------------------------------------------
# Settings as options


def _none_or(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if text.lower() == "none":
            return None
        return convert(text)

    parse.__name__ = convert.__name__
    return parse


def size(text: str) -> int:
    """Bytes, with an optional binary suffix: ``65536``, ``64k``, ``1M``, ``1G``."""
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (e.g. 65536, 64k, 1M)") \
            from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return value


def _positive(convert: Callable[[str], Any], what: str, text: str) -> Any:
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {what} {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def count(text: str) -> int:
    """A positive integer."""
    value: int = _positive(int, "number", text)
    return value


def seconds(text: str) -> float:
    """A positive number of seconds."""
    value: float = _positive(float, "number of seconds", text)
    return value


#: (flag, Settings field, parser, help) for the valued options.
_VALUED = (
    ("--max-connections", "max_connections", _none_or(count),
     "open connections at once; the next handshake gets 503 (default 10000)"),
    ("--max-message-size", "max_message_size", _none_or(size),
     "largest message accepted, e.g. 64k or 16M; bigger ones get close 1009 (default 1M)"),
    ("--max-send-queue", "max_send_queue", _none_or(size),
     "bytes queued per connection before send() fails (default 4M)"),
    ("--handshake-timeout", "handshake_timeout", _none_or(seconds),
     "seconds for the opening handshake (default 10)"),
    ("--close-timeout", "close_timeout", _none_or(seconds),
     "seconds to wait for the closing handshake (default 10)"),
    ("--ping-interval", "ping_interval", _none_or(seconds),
     "seconds between keepalive pings; 'none' turns them off (default 20)"),
    ("--ping-timeout", "ping_timeout", _none_or(seconds),
     "seconds to wait for a pong before closing (default 20)"),
    ("--proxy-hops", "proxy_hops", count,
     "proxies in front that append to the forwarding header (default 1)"),
    ("--proxy-header", "proxy_header", str.lower,
     "header the trusted proxies set: x-forwarded-for (default) or forwarded"),
    ("--metrics-path", "metrics_path", str,
     "serve Prometheus metrics at this path, e.g. /metrics (needs wskit[metrics])"),
    ("--health-path", "health_path", str,
     "answer 200 ok at this path, e.g. /healthz (503 while shutting down)"),
    ("--backplane", "backplane", _none_or(str),
     "join a cluster: redis://[:password@]host:port/db (rediss:// for TLS); every node "
     "given the same URL shares Comms, broadcasts and rooms (needs wskit[redis])"),
    ("--backplane-lease", "backplane_lease", seconds,
     "seconds before a dead node's rooms move to a live node (default 5)"),
)


#: Settings that only a server uses: not offered by ``wskit client``.
_SERVER_ONLY = frozenset({"max_connections", "allowed_origins", "trust_proxy_headers",
                          "proxy_hops", "proxy_header", "metrics_path", "health_path",
                          "backplane", "backplane_lease"})
#: What ``--help`` shows after a valued option (``SECONDS`` when not listed:
#: the timeouts, intervals and the lease).
_METAVARS = {"max_connections": "N", "max_message_size": "BYTES", "max_send_queue": "BYTES",
             "proxy_hops": "N", "proxy_header": "HEADER", "metrics_path": "PATH",
             "health_path": "PATH", "backplane": "URL"}


def add_settings(parser: argparse.ArgumentParser, *, server: bool = True) -> None:
    """The Settings options; ``server=False`` leaves out the server-only ones."""
    group = parser.add_argument_group(
        "settings", "wskit.Settings fields; 'none' turns a limit or timeout off")
    for flag, field, parse, help_text in _VALUED:
        if not server and field in _SERVER_ONLY:
            continue
        group.add_argument(flag, dest=f"setting_{field}", type=parse,
                           metavar=_METAVARS.get(field, "SECONDS"),
                           default=argparse.SUPPRESS, help=help_text)
    group.add_argument("--no-compression", dest="setting_compression", action="store_const",
                       const=None, default=argparse.SUPPRESS,
                       help="disable permessage-deflate")
    if not server:
        return
    group.add_argument("--allowed-origin", dest="setting_allowed_origins", action="append",
                       metavar="ORIGIN", default=argparse.SUPPRESS,
                       help="accept only this Origin (repeatable; '' allows no Origin)")
    group.add_argument("--trust-proxy-headers", dest="setting_trust_proxy_headers",
                       action="store_const", const=True, default=argparse.SUPPRESS,
                       help="a proxy on this machine (loopback) tells the client's address; "
                            "same as --trusted-proxy 127.0.0.0/8 --trusted-proxy ::1")
    group.add_argument("--trusted-proxy", dest="setting_trusted_proxies", action="append",
                       metavar="ADDR[/BITS]", default=argparse.SUPPRESS,
                       help="a reverse proxy whose X-Forwarded-For (or Forwarded) is "
                            "believed: an address or network (repeatable)")


def settings_from(args: argparse.Namespace) -> Settings:
    given = {name.removeprefix("setting_"): value for name, value in vars(args).items()
             if name.startswith("setting_")}
    try:
        return Settings(**given)
    except Error as err:
        raise UsageError(str(err)) from err


def settings_argv(args: argparse.Namespace) -> list[str]:
    """The settings options given, as arguments again (for ``dev``'s child)."""
    argv: list[str] = []
    values = vars(args)
    for flag, field, _, _ in _VALUED:
        if f"setting_{field}" in values:
            value = values[f"setting_{field}"]
            argv += [flag, "none" if value is None else str(value)]
    if "setting_compression" in values:
        argv.append("--no-compression")
    for origin in values.get("setting_allowed_origins", ()):
        argv.append(f"--allowed-origin={origin}")
    if "setting_trust_proxy_headers" in values:
        argv.append("--trust-proxy-headers")
    for proxy in values.get("setting_trusted_proxies", ()):
        argv.append(f"--trusted-proxy={proxy}")
    return argv


def proxy_option(text: str) -> str | None:
    """``--proxy``: a URL, ``auto``, or ``none`` (checked by ``Settings``)."""
    return None if text.strip().lower() == "none" else text.strip()


def non_negative(text: str) -> float:
    """A number of seconds, 0 included."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value
