"""HTTP ``CONNECT`` proxies for clients, sans I/O: which proxy, and the tunnel's handshake.

Three pieces, each a pure function of its inputs (the environment is passed
in as a mapping, never read here):

- :func:`parse_proxy_url` reads ``http://user:password@host:port``;
- :func:`proxy_from_environment` picks the proxy for one WebSocket URL the
  way the Python ecosystem reads ``*_proxy`` variables (``urllib.request``,
  requests, httpx, websockets >= 15), and applies ``NO_PROXY``;
- :class:`ProxyConnect` writes the ``CONNECT`` request (RFC 9110 section
  9.3.6) and reads the proxy's answer with h11, which switches protocols
  on a 2xx answer to ``CONNECT`` and keeps any bytes after the answer as
  ``trailing_data``.

Which variable, in order (websockets' order, minus SOCKS which wskit does
not speak): ``wss_proxy`` then ``https_proxy`` for ``wss://``; ``ws_proxy``,
``https_proxy``, then ``http_proxy`` for ``ws://``. Each name is read in
lower case first, then upper case; an empty value counts as unset (and a
lower-case empty value hides the upper-case one), and ``HTTP_PROXY`` in
upper case is ignored when ``REQUEST_METHOD`` is set (a CGI script, where
a client's ``Proxy:`` header becomes that variable: "httpoxy",
CVE-2016-1000110). All as ``urllib.request.getproxies_environment``.

``NO_PROXY`` (``no_proxy`` first): comma-separated entries, case-insensitive;
``*`` alone bypasses every host; ``example.com``, ``.example.com`` and
``*.example.com`` all match ``example.com`` and its subdomains (urllib's
rule: a leading dot is ignored); ``host:port`` matches that port only; an IP
address matches itself and ``10.0.0.0/8`` a network (as requests, httpx and
Go do); ``[::1]`` brackets are optional.

Loopback (``localhost``, ``*.localhost``, 127.0.0.0/8, ``::1``) never goes
through a proxy from the environment, as in Go's ``net/http``, .NET, Ruby's
``Net::HTTP`` and Chromium: a remote proxy cannot reach this machine's
loopback, so sending it there only turns a working connection into an
error. urllib, requests and httpx do proxy loopback unless ``NO_PROXY``
lists it. Chromium's ``<-loopback>`` entry in ``NO_PROXY`` removes the
rule, for a proxy that really is on this machine. An explicit proxy
(``Settings(proxy=URL)``) is used for every host, loopback included.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
from collections.abc import Mapping
from typing import NoReturn
from urllib.parse import unquote, urlsplit

import h11

from .._errors import Error, ErrorKind

__all__ = ["ProxyConnect", "ProxyURL", "bypasses", "parse_proxy_url", "proxy_from_environment"]

#: Where an ``http://`` proxy listens when its URL names no port (urllib,
#: requests, httpx and websockets all take 80; curl alone takes 1080).
DEFAULT_PROXY_PORT = 80
_LOOPBACK_OPT_OUT = "<-loopback>"


@dataclasses.dataclass(frozen=True, slots=True)
class ProxyURL:
    """An HTTP proxy: where it listens and the credentials for it, if any."""

    host: str
    port: int
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    @property
    def display(self) -> str:
        """``http://[user@]host:port``, never the password (for messages and logs)."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.username}@" if self.username is not None else ""
        return f"http://{user}{shown}:{self.port}"


def parse_proxy_url(text: str, *, source: str = "the proxy URL") -> ProxyURL:
    """``http://[user[:password]@]host[:port][/]`` as a :class:`ProxyURL`.

    A URL without a scheme is taken as ``http://`` (``proxy:3128`` is common
    in environment variables; curl and requests read it so). ``source``
    names where the text came from in the error. Raises :class:`Error`
    (``USAGE``) for anything else: another scheme (``https://`` and
    ``socks5://`` proxies are not supported), no host, a path or a query.
    """
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise Error(f"invalid proxy URL in {source}: {exc}", ErrorKind.USAGE) from exc
    if parts.scheme.lower() != "http":
        raise Error(f"{source} is a {parts.scheme}:// proxy; wskit speaks to HTTP proxies "
                    "only: give an http://host:port URL", ErrorKind.USAGE)
    if not parts.hostname:
        raise Error(f"invalid proxy URL in {source}: no host (expected http://host:port)",
                    ErrorKind.USAGE)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise Error(f"invalid proxy URL in {source}: a proxy URL has no path or query "
                    "(expected http://host:port)", ErrorKind.USAGE)
    username = None if parts.username is None else unquote(parts.username)
    password = None if parts.password is None else unquote(parts.password)
    return ProxyURL(parts.hostname, port or DEFAULT_PROXY_PORT, username, password)


def proxy_from_environment(secure: bool, host: str, port: int,
                           environ: Mapping[str, str]) -> tuple[ProxyURL, str] | None:
    """The proxy the environment names for ``ws[s]://host:port``, or ``None``.

    Returns the proxy and the variable it came from (for messages). Raises
    :class:`Error` (``USAGE``, naming the variable) when that variable does
    not hold a usable HTTP proxy URL.
    """
    found = _getproxies(environ)
    no_proxy = found.get("no")
    if not _proxy_loopback(no_proxy) and _is_loopback(host):
        return None
    if no_proxy is not None and bypasses(no_proxy, host, port):
        return None
    for scheme in ("wss", "https") if secure else ("ws", "https", "http"):
        value = found.get(scheme)
        if value is not None:
            source = f"the {scheme}_proxy environment variable"
            return parse_proxy_url(value, source=source), source
    return None


def _getproxies(environ: Mapping[str, str]) -> dict[str, str]:
    """``urllib.request.getproxies_environment``, over a given mapping."""
    proxies: dict[str, str] = {}
    for name, value in environ.items():
        lower = name.lower()
        if value and lower.endswith("_proxy"):
            proxies[lower[:-6]] = value
    if "REQUEST_METHOD" in environ:  # httpoxy: see the module docstring
        proxies.pop("http", None)
    for name, value in environ.items():  # lower case wins, empty unsets
        if name.endswith("_proxy"):
            if value:
                proxies[name[:-6]] = value
            else:
                proxies.pop(name[:-6], None)
    return proxies


def _proxy_loopback(no_proxy: str | None) -> bool:
    return no_proxy is not None and _LOOPBACK_OPT_OUT in _entries(no_proxy)


def _entries(no_proxy: str) -> list[str]:
    return [entry.strip().lower() for entry in no_proxy.split(",") if entry.strip()]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761 section 6.3
        return True
    ip = _ip(name)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip is not None and ip.is_loopback


def bypasses(no_proxy: str, host: str, port: int) -> bool:
    """Whether ``NO_PROXY``'s value says to reach ``host:port`` directly."""
    name = host.lower().rstrip(".").strip("[]")
    ip = _ip(name)
    for entry in _entries(no_proxy):
        if entry == "*":
            return True
        entry_port: int | None = None
        head, sep, tail = entry.rpartition(":")
        # "host:port" or "[v6]:port"; a bare IPv6 address has colons too.
        if sep and tail.isdigit() and (head.endswith("]") or ":" not in head):
            entry, entry_port = head, int(tail)
        if entry_port is not None and entry_port != port:
            continue
        if ip is not None:  # an address matches addresses and networks, never names
            if _in_network(ip, entry.strip("[]")):
                return True
            continue
        domain = entry.removeprefix("*").lstrip(".")
        if domain and (name == domain or name.endswith("." + domain)):
            return True
    return False


def _in_network(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, entry: str) -> bool:
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False  # a name
    # ip_network's "in" compares integers: an IPv4 address would match "::/0".
    return network.version == ip.version and ip in network


class ProxyConnect:
    """The ``CONNECT`` exchange with an HTTP proxy: request out, answer in.

    ``initiate()`` gives the request's bytes; feed the proxy's answer to
    ``receive_data`` until it returns ``True`` (the tunnel is open; what
    came after the answer is ``trailing_data``, the target's first bytes).
    A refusal raises :class:`Error` of kind ``HTTP`` with the proxy's
    status and a message that names the proxy and what to do.
    """

    def __init__(self, proxy: ProxyURL, host: str, port: int, *, max_header_size: int) -> None:
        self._proxy = proxy
        shown = f"[{host}]" if ":" in host else host
        self._authority = f"{shown}:{port}"
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_size)
        self._seen = False  # any byte of the answer yet

    def initiate(self) -> bytes:
        """The ``CONNECT host:port`` request, with ``Proxy-Authorization`` when
        the proxy URL has credentials (Basic, RFC 7617, UTF-8)."""
        headers = [("Host", self._authority)]
        proxy = self._proxy
        if proxy.username is not None:
            pair = f"{proxy.username}:{proxy.password or ''}".encode()
            headers.append(("Proxy-Authorization",
                            "Basic " + base64.b64encode(pair).decode("ascii")))
        request = h11.Request(method="CONNECT", target=self._authority, headers=headers)
        return (self._h11.send(request) or b"") + (self._h11.send(h11.EndOfMessage()) or b"")

    def receive_data(self, data: bytes | bytearray) -> bool:
        """Feed the proxy's bytes (``b""`` at end of stream); ``True`` once the tunnel is open.

        Raises :class:`Error`: ``HTTP`` with ``status`` for any answer but
        2xx (decided on the status line: a refusal's body, an HTML page, is
        not waited for), ``PROTOCOL`` for an answer that is not HTTP, ``IO``
        when the proxy closed the connection without answering.
        """
        h = self._h11
        data = bytes(data)
        self._seen = self._seen or bool(data)
        h.receive_data(data)
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                if not self._seen:
                    raise Error(f"proxy {self._proxy.display} closed the connection without "
                                f"answering CONNECT {self._authority}", ErrorKind.IO) from exc
                raise Error(f"proxy {self._proxy.display} did not answer CONNECT with valid "
                            f"HTTP (is it an HTTP proxy?): {exc}", ErrorKind.PROTOCOL) from exc
            if event is h11.NEED_DATA:
                return False
            if event is h11.PAUSED:
                # h11 pauses after a 2xx answer to CONNECT: both sides switched.
                return True
            if isinstance(event, h11.Response) and not 200 <= event.status_code < 300:
                self._refused(event)
            # A 2xx Response (PAUSED follows) or a 1xx interim answer: go on.

    @property
    def trailing_data(self) -> bytes:
        """Bytes the proxy passed on after its answer: the target's first bytes."""
        return self._h11.trailing_data[0]

    def _refused(self, response: h11.Response) -> NoReturn:
        status = response.status_code
        reason = response.reason.decode("latin-1", "replace")
        proxy = self._proxy.display
        if status in (401, 407):
            # tinyproxy answers a wrong password with 401, a missing one with 407.
            if self._proxy.username is not None:
                message = (f"proxy {proxy} refused our credentials (HTTP {status} {reason}): "
                           "check the user and password in the proxy URL")
            else:
                message = (f"proxy {proxy} requires authentication (HTTP {status} {reason}): "
                           "put the credentials in the proxy URL, "
                           "http://user:password@host:port")
        else:
            message = (f"proxy {proxy} refused to open a tunnel to {self._authority} "
                       f"(HTTP {status} {reason}): check that the proxy allows CONNECT to "
                       "this host and port, or reach the server directly (NO_PROXY, "
                       "or Settings(proxy=None))")
        raise Error(message, ErrorKind.HTTP, status=status)
