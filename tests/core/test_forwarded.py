"""Which address is the client's behind proxies (``_core/forwarded.py``)."""

from __future__ import annotations

import pytest

from wskit import Error, ErrorKind, Headers
from wskit._core.forwarded import ProxyPolicy, parse_networks

ONE_NGINX = ProxyPolicy.make(("127.0.0.1",), 1, "x-forwarded-for")


def xff(value: str) -> Headers:
    return Headers({"X-Forwarded-For": value})


def test_an_untrusted_peer_is_the_client_whatever_it_says() -> None:
    assert ONE_NGINX.client_address("198.51.100.4", xff("6.6.6.6")) == "198.51.100.4"
    assert ONE_NGINX.client_address("not-an-ip", xff("6.6.6.6")) == "not-an-ip"
    assert ONE_NGINX.client_address(None, xff("6.6.6.6")) is None


def test_the_address_the_proxy_saw_wins_over_anything_forged_left_of_it() -> None:
    # The forgery: the client sent "6.6.6.6, 127.0.0.1", nginx appended
    # the address it saw (203.0.113.7).
    headers = xff("6.6.6.6, 127.0.0.1, 203.0.113.7")
    assert ONE_NGINX.client_address("127.0.0.1", headers) == "203.0.113.7"
    # The real client on the proxy's machine: still the proxy's entry.
    assert ONE_NGINX.client_address("127.0.0.1", xff("6.6.6.6, 127.0.0.1")) == "127.0.0.1"
    # A trusted proxy that sent no header: it is the client.
    assert ONE_NGINX.client_address("127.0.0.1", Headers()) == "127.0.0.1"


def test_recursive_walk_stops_at_the_first_untrusted_hop_or_the_hop_count() -> None:
    chain = ProxyPolicy.make(("10.0.0.0/8",), 3, "x-forwarded-for")
    # cdn (10.1.1.1) -> lb (10.2.2.2) -> us; the client is left of the proxies.
    headers = xff("6.6.6.6, 203.0.113.7, 10.1.1.1")
    assert chain.client_address("10.2.2.2", headers) == "203.0.113.7"
    # Every hop trusted: the leftmost, as nginx's real_ip does.
    assert chain.client_address("10.2.2.2", xff("10.9.9.9, 10.1.1.1")) == "10.9.9.9"
    # At most `hops` entries are believed, even when they look trusted.
    assert chain.client_address("10.2.2.2", xff("6.6.6.6, 10.3.3.3, 10.4.4.4, 10.5.5.5")) \
        == "10.3.3.3"


def test_entries_with_ports_brackets_and_garbage() -> None:
    policy = ProxyPolicy.make(("127.0.0.1", "::1"), 2, "x-forwarded-for")
    assert policy.client_address("::1", xff("192.0.2.1:4711")) == "192.0.2.1"
    assert policy.client_address("::1", xff("[2001:db8::1]:4711")) == "2001:db8::1"
    assert policy.client_address("::1", xff("2001:db8::2")) == "2001:db8::2"
    # Not an address: the walk ends at the nearest hop we could trust.
    assert policy.client_address("127.0.0.1", xff("unknown")) == "127.0.0.1"
    assert policy.client_address("127.0.0.1", xff("garbage, 127.0.0.1")) == "127.0.0.1"


def test_forwarded_header_when_the_proxy_sets_that_one() -> None:
    policy = ProxyPolicy.make(("10.0.0.1",), 1, "forwarded")
    headers = Headers([("Forwarded", 'for=6.6.6.6, for="[2001:db8::1]:4711";proto=https'),
                       ("X-Forwarded-For", "9.9.9.9")])
    assert policy.client_address("10.0.0.1", headers) == "2001:db8::1"
    assert policy.client_address("10.0.0.1", Headers({"Forwarded": "By=x; FOR=192.0.2.60"})) \
        == "192.0.2.60"
    # An element without for= (or obfuscated) is unknown: the proxy itself.
    assert policy.client_address("10.0.0.1", Headers({"Forwarded": "proto=https"})) \
        == "10.0.0.1"
    assert policy.client_address("10.0.0.1", Headers({"Forwarded": "for=_hidden"})) \
        == "10.0.0.1"
    # The proxy sets Forwarded: an X-Forwarded-For from the client is ignored.
    assert policy.client_address("10.0.0.1", xff("6.6.6.6")) == "10.0.0.1"
    # ... and the other way round.
    assert ONE_NGINX.client_address("127.0.0.1", Headers({"Forwarded": "for=6.6.6.6"})) \
        == "127.0.0.1"


def test_parse_networks() -> None:
    nets = parse_networks(["10.0.0.5", " 10.1.0.0/16 ", "::1", "192.168.1.7/24"])
    assert [str(n) for n in nets] == ["10.0.0.5/32", "10.1.0.0/16", "::1/128",
                                      "192.168.1.0/24"]
    with pytest.raises(Error) as info:
        parse_networks(["10.0.0.0/8", "proxy.local"])
    assert info.value.kind is ErrorKind.USAGE
    assert "'proxy.local' is not an IP address or network" in str(info.value)
    assert ProxyPolicy.make(("10.0.0.5",), 1, "forwarded") is \
        ProxyPolicy.make(("10.0.0.5",), 1, "forwarded")
