"""Which address is the client's, behind reverse proxies, decided without I/O.

Theory of operation. A proxy that forwards a request appends the address
it received it from to ``X-Forwarded-For`` (or adds a ``for=`` element to
RFC 7239's ``Forwarded``). Everything to the left of that entry came from
the client and may be forged; only the entries appended by proxies we trust
mean anything. So, like nginx's ``real_ip`` module and werkzeug's
``ProxyFix``:

1. The TCP peer must itself be a trusted proxy (``trusted_proxies``), or
   no header counts at all: the peer is the client.
2. The header the proxy sets (``proxy_header``; the other one is ignored,
   since a client could send it) is read as a list, oldest hop first.
3. It is walked from the right. Each entry is the address that a trusted
   hop saw. The client is the first entry that is not itself a trusted
   proxy (nginx's ``real_ip_recursive on``), or the ``proxy_hops``-th entry
   from the right, whichever comes first (``ProxyFix(x_for=N)``): with one
   proxy in front, a client that forges ``X-Forwarded-For: 6.6.6.6,
   127.0.0.1`` is still seen as the address the proxy saw.
4. An entry that is not an IP address (RFC 7239 ``unknown``, an obfuscated
   ``_name``, garbage) ends the walk: the answer is the nearest address we
   could trust, the hop that reported it.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Iterable
from typing import Literal

from .._errors import Error, ErrorKind
from .http import Headers

__all__ = ["ProxyPolicy", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
HeaderName = Literal["x-forwarded-for", "forwarded"]

def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses (``"10.0.0.5"``) and networks (``"10.0.0.0/8"``) as networks.

    Raises ``Error(USAGE)`` naming the entry that is neither."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise Error(f"trusted_proxies: {entry!r} is not an IP address or network "
                        "(e.g. '10.0.0.5', '10.0.0.0/8', '::1')", ErrorKind.USAGE) from None
    return tuple(networks)


@dataclasses.dataclass(frozen=True, slots=True)
class ProxyPolicy:
    """Whose forwarding headers to believe, and how far (module docstring)."""

    networks: tuple[Network, ...]
    hops: int = 1
    header: HeaderName = "x-forwarded-for"

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def make(entries: tuple[str, ...], hops: int, header: HeaderName) -> ProxyPolicy:
        """One policy per distinct setting (a server makes it once)."""
        return ProxyPolicy(parse_networks(entries), hops, header)

    def trusts(self, host: str) -> bool:
        address = _address(host)
        return address is not None and any(address in net for net in self.networks)

    def client_address(self, peer: str | None, headers: Headers) -> str | None:
        """The client's address for a request that ``peer`` sent us."""
        if peer is None or not self.trusts(peer):
            return peer
        chain = _forwarded_for(headers) if self.header == "forwarded" \
            else [_strip_port(e) for e in headers.tokens("X-Forwarded-For")]
        nearest = peer
        for taken, entry in enumerate(reversed(chain), 1):
            address = _address(entry)
            if address is None:
                return nearest  # unknown or obfuscated: the hop that said so
            nearest = str(address)
            if taken >= self.hops or not self.trusts(nearest):
                return nearest
        return nearest  # every hop trusted: the leftmost, as nginx does


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _forwarded_for(headers: Headers) -> list[str]:
    """The ``for=`` nodes of RFC 7239 ``Forwarded``, one per element, in order
    (an element without one counts as ``unknown``)."""
    nodes: list[str] = []
    for element in headers.tokens("Forwarded"):
        node = "unknown"
        for pair in element.split(";"):
            key, _, value = pair.strip().partition("=")
            if key.strip().lower() == "for":
                node = _strip_port(value.strip().strip('"'))
        nodes.append(node)
    return nodes


def _strip_port(node: str) -> str:
    """``"[2001:db8::1]:4711"`` -> ``"2001:db8::1"``; ``"192.0.2.1:80"`` ->
    ``"192.0.2.1"``; a bare IPv6 address stays as it is."""
    node = node.strip()
    if node.startswith("["):
        return node[1:].partition("]")[0]
    if node.count(":") == 1:
        return node.partition(":")[0]
    return node
