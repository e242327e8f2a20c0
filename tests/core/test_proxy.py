"""Proxy URLs, the environment, NO_PROXY and the CONNECT exchange (``_core/proxy.py``).

Where wskit follows ``urllib.request`` (which variable wins, the NO_PROXY
name rules) the tests compare with urllib itself on the same input, so the
claim "as the Python ecosystem does" is checked, not just stated.
"""

from __future__ import annotations

import base64
import urllib.request

import h11
import pytest

from wskit import Error, ErrorKind
from wskit._core.proxy import (
    ProxyConnect,
    ProxyURL,
    bypasses,
    parse_proxy_url,
    proxy_from_environment,
)

# ----------------------------------------------------------------------
# Proxy URLs


def test_parse_proxy_url() -> None:
    assert parse_proxy_url("http://proxy:3128") == ProxyURL("proxy", 3128)
    assert parse_proxy_url("http://proxy/") == ProxyURL("proxy", 80)
    assert parse_proxy_url(" proxy.internal:8080 ") == ProxyURL("proxy.internal", 8080)
    assert parse_proxy_url("HTTP://[::1]:3128") == ProxyURL("::1", 3128)
    url = parse_proxy_url("http://al%40ce:p%3Ass%20w@proxy:1")
    assert (url.username, url.password) == ("al@ce", "p:ss w")
    assert parse_proxy_url("http://bob@proxy:1").password is None


def test_a_proxy_url_never_shows_its_password() -> None:
    url = parse_proxy_url("http://alice:s3cret@proxy:3128")
    assert url.display == "http://alice@proxy:3128"
    assert "s3cret" not in repr(url)
    assert parse_proxy_url("http://[::1]:3").display == "http://[::1]:3"


@pytest.mark.parametrize(("text", "words"), [
    ("https://proxy:3128", "is a https:// proxy; wskit speaks to HTTP proxies only"),
    ("socks5h://proxy:1080", "is a socks5h:// proxy"),
    ("http://", "no host"),
    ("http://proxy:3128/path", "no path or query"),
    ("http://proxy:3128/?q", "no path or query"),
    ("http://proxy:3128#f", "no path or query"),
    ("http://proxy:port", "invalid proxy URL in where: Port could not be cast"),
    ("http://[::1", "invalid proxy URL in where"),
])
def test_bad_proxy_urls_are_usage_errors(text: str, words: str) -> None:
    with pytest.raises(Error) as info:
        parse_proxy_url(text, source="where")
    assert info.value.kind is ErrorKind.USAGE
    assert words in str(info.value)


# ----------------------------------------------------------------------
# The environment


def _env_proxy(secure: bool, host: str, environ: dict[str, str],
               port: int = 443) -> str | None:
    found = proxy_from_environment(secure, host, port, environ)
    return None if found is None else f"{found[0].host} from {found[1]}"


def test_which_variable_for_which_scheme() -> None:
    every = {"wss_proxy": "w:1", "ws_proxy": "v:1", "https_proxy": "s:1", "http_proxy": "h:1"}
    assert _env_proxy(True, "example.com", every) == "w from the wss_proxy environment variable"
    assert _env_proxy(False, "example.com", every) == "v from the ws_proxy environment variable"
    plain = {"https_proxy": "s:1", "http_proxy": "h:1"}
    assert _env_proxy(True, "example.com", plain) == "s from the https_proxy environment variable"
    assert _env_proxy(False, "example.com", plain) == "s from the https_proxy environment variable"
    http_only = {"HTTP_PROXY": "h:1"}
    assert _env_proxy(False, "example.com", http_only) == \
        "h from the http_proxy environment variable"
    assert _env_proxy(True, "example.com", http_only) is None  # http_proxy is not for TLS
    assert _env_proxy(True, "example.com", {}) is None


@pytest.mark.parametrize("environ", [
    {"HTTPS_PROXY": "upper:1", "https_proxy": "lower:1"},
    {"https_proxy": "lower:1", "HTTPS_PROXY": "upper:1"},
    {"HTTPS_PROXY": "upper:1", "https_proxy": ""},
    {"HTTPS_PROXY": "", "Https_Proxy": "mixed:1"},
    {"HTTP_PROXY": "upper:1", "REQUEST_METHOD": "GET"},
    {"http_proxy": "lower:1", "REQUEST_METHOD": "GET"},
    {"unrelated": "x", "HTTP_PROXY": "upper:1", "https_proxy": ""},
])
def test_the_variables_are_read_as_urllib_reads_them(
        environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.environ", environ)
    theirs = urllib.request.getproxies_environment()
    for secure, schemes in ((True, ("https",)), (False, ("https", "http"))):
        wanted = next((theirs[s] for s in schemes if s in theirs), None)
        found = proxy_from_environment(secure, "example.com", 443, environ)
        got = None if found is None else f"{found[0].host}:{found[0].port}"
        assert got == wanted, (environ, secure)


def test_a_bad_variable_names_itself() -> None:
    with pytest.raises(Error) as info:
        proxy_from_environment(True, "example.com", 443, {"https_proxy": "socks5://p:1"})
    assert info.value.kind is ErrorKind.USAGE
    assert "the https_proxy environment variable is a socks5:// proxy" in str(info.value)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "app.localhost", "127.0.0.1",
                                  "127.1.2.3", "::1", "[::1]", "::ffff:127.0.0.1"])
def test_loopback_is_direct_unless_no_proxy_says_otherwise(host: str) -> None:
    environ = {"https_proxy": "p:1"}
    assert proxy_from_environment(True, host, 443, environ) is None
    assert proxy_from_environment(True, host, 443,
                                  {**environ, "no_proxy": "example.com"}) is None
    lifted = {**environ, "no_proxy": " <-loopback> "}
    assert proxy_from_environment(True, host, 443, lifted) is not None


@pytest.mark.parametrize("host", ["localhost.example.com", "128.0.0.1", "::2", "10.0.0.1"])
def test_not_loopback(host: str) -> None:
    assert proxy_from_environment(True, host, 443, {"https_proxy": "p:1"}) is not None


def test_no_proxy_is_applied_to_the_environment_proxy() -> None:
    environ = {"https_proxy": "p:1", "no_proxy": "internal.example.com"}
    assert proxy_from_environment(True, "internal.example.com", 443, environ) is None
    assert proxy_from_environment(True, "www.example.com", 443, environ) is not None


# ----------------------------------------------------------------------
# NO_PROXY


@pytest.mark.parametrize(("no_proxy", "host", "port", "expected"), [
    ("*", "anything.org", 1, True),
    (" * ", "anything.org", 1, True),
    ("example.com", "example.com", 443, True),
    ("example.com", "EXAMPLE.com.", 443, True),
    ("example.com", "www.example.com", 443, True),
    ("example.com", "notexample.com", 443, False),
    (".example.com", "example.com", 443, True),
    (".example.com", "a.b.example.com", 443, True),
    ("*.example.com", "www.example.com", 443, True),
    ("Example.COM", "www.example.com", 443, True),
    ("a.org, ,example.com", "example.com", 443, True),
    ("example.com:8443", "example.com", 8443, True),
    ("example.com:8443", "example.com", 443, False),
    ("10.0.0.0/8", "10.1.2.3", 443, True),
    ("10.0.0.0/8", "11.1.2.3", 443, False),
    ("192.168.1.5", "192.168.1.5", 443, True),
    ("192.168.1.5:80", "192.168.1.5", 443, False),
    ("2.3.4", "1.2.3.4", 443, False),  # an address matches networks, never name suffixes
    ("::1", "::1", 443, True),
    ("[::1]", "[::1]", 443, True),
    ("[::1]:8080", "::1", 8080, True),
    ("[::1]:8080", "::1", 443, False),
    ("fd00::/8", "fd12::1", 443, True),
    ("::/0", "127.0.0.1", 443, False),  # an IPv4 address is in no IPv6 network
    ("example.com", "10.0.0.1", 443, False),
    ("<-loopback>", "localhost", 443, False),
    ("", "example.com", 443, False),
    ("*", "", 443, True),
])
def test_bypasses(no_proxy: str, host: str, port: int, expected: bool) -> None:
    assert bypasses(no_proxy, host, port) is expected


@pytest.mark.parametrize(("no_proxy", "host"), [
    ("example.com", "example.com"), ("example.com", "www.example.com"),
    (".example.com", "example.com"), ("example.com", "notexample.com"),
    ("a.org,example.com", "x.example.com"), ("*", "x"), ("other.org", "example.com"),
])
def test_name_rules_agree_with_urllib(no_proxy: str, host: str) -> None:
    theirs = urllib.request.proxy_bypass_environment(host, {"no": no_proxy})
    assert bypasses(no_proxy, host, 443) is bool(theirs)


# ----------------------------------------------------------------------
# The CONNECT exchange


def _parse_request(data: bytes) -> h11.Request:
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    event = server.next_event()
    assert isinstance(event, h11.Request)
    assert isinstance(server.next_event(), h11.EndOfMessage)
    return event


def test_the_connect_request() -> None:
    request = _parse_request(ProxyConnect(ProxyURL("p", 1), "example.com", 443,
                                          max_header_size=4096).initiate())
    assert request.method == b"CONNECT"
    assert request.target == b"example.com:443"
    assert dict(request.headers) == {b"host": b"example.com:443"}


def test_the_connect_request_with_credentials_and_ipv6() -> None:
    proxy = ProxyURL("p", 1, "alice", "pässword")
    request = _parse_request(ProxyConnect(proxy, "::1", 8080, max_header_size=4096).initiate())
    assert request.target == b"[::1]:8080"
    headers = dict(request.headers)
    scheme, _, token = headers[b"proxy-authorization"].partition(b" ")
    assert scheme == b"Basic"
    assert base64.b64decode(token) == "alice:pässword".encode()
    no_password = ProxyConnect(ProxyURL("p", 1, "bob"), "h", 1, max_header_size=4096)
    token = dict(_parse_request(no_password.initiate()).headers)[b"proxy-authorization"]
    assert base64.b64decode(token.split(b" ")[1]) == b"bob:"


def _exchange(*answers: bytes, proxy: ProxyURL | None = None) -> ProxyConnect:
    connect = ProxyConnect(proxy or ProxyURL("p", 3128), "example.com", 443,
                           max_header_size=4096)
    connect.initiate()
    done = False
    for answer in answers:
        assert not done
        done = connect.receive_data(answer)
    assert done
    return connect


def test_the_tunnel_opens_on_2xx() -> None:
    connect = _exchange(b"HTTP/1.0 200 Connection established\r\nProxy-agent: x\r\n\r\n")
    assert connect.trailing_data == b""
    connect = _exchange(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2", b"04 OK\r\n\r\nfirst bytes")
    assert connect.trailing_data == b"first bytes"


def test_a_partial_answer_needs_more() -> None:
    connect = ProxyConnect(ProxyURL("p", 1), "h", 1, max_header_size=4096)
    connect.initiate()
    assert connect.receive_data(b"HTTP/1.1 200 OK\r\n") is False
    assert connect.receive_data(bytearray(b"\r\n")) is True


@pytest.mark.parametrize(("answer", "proxy", "status", "words"), [
    (b"HTTP/1.0 407 Proxy Authentication Required\r\n\r\n", ProxyURL("p", 1), 407,
     "proxy http://p:1 requires authentication (HTTP 407 Proxy Authentication Required): "
     "put the credentials in the proxy URL, http://user:password@host:port"),
    (b"HTTP/1.0 401 Unauthorized\r\n\r\n", ProxyURL("p", 1, "al", "x"), 401,
     "proxy http://al@p:1 refused our credentials (HTTP 401 Unauthorized): check the user "
     "and password in the proxy URL"),
    (b"HTTP/1.1 407 Nope\r\nContent-Length: 5\r\n\r\nhello", ProxyURL("p", 1, "al", "x"), 407,
     "refused our credentials (HTTP 407 Nope)"),
    (b"HTTP/1.1 403 Access violation\r\n\r\n<html>", ProxyURL("p", 1), 403,
     "proxy http://p:1 refused to open a tunnel to example.com:443 (HTTP 403 Access "
     "violation): check that the proxy allows CONNECT"),
    (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", ProxyURL("p", 1), 502, "HTTP 502 Bad Gateway"),
])
def test_refusals_are_http_errors(answer: bytes, proxy: ProxyURL, status: int,
                                  words: str) -> None:
    connect = ProxyConnect(proxy, "example.com", 443, max_header_size=4096)
    connect.initiate()
    with pytest.raises(Error) as info:
        connect.receive_data(answer)
    assert info.value.kind is ErrorKind.HTTP
    assert info.value.status == status
    assert words in str(info.value)
    assert "x)" not in str(info.value)


@pytest.mark.parametrize(("answers", "kind", "words"), [
    ((b"",), ErrorKind.IO, "proxy http://p:3128 closed the connection without answering "
                           "CONNECT example.com:443"),
    ((b"SSH-2.0-OpenSSH\r\n", b""), ErrorKind.PROTOCOL,
     "proxy http://p:3128 did not answer CONNECT with valid HTTP (is it an HTTP proxy?)"),
    ((b"\x16\x03\x01\x02\x00garbage\r\n\r\n",), ErrorKind.PROTOCOL, "did not answer CONNECT"),
    ((b"HTTP/1.1 200 OK\r\n", b""), ErrorKind.PROTOCOL, "did not answer CONNECT"),
    ((b"HTTP/1.1 200 OK\r\nX: " + b"y" * 5000,), ErrorKind.PROTOCOL, "did not answer"),
])
def test_answers_that_are_not_http(answers: tuple[bytes, ...], kind: ErrorKind,
                                   words: str) -> None:
    connect = ProxyConnect(ProxyURL("p", 3128), "example.com", 443, max_header_size=4096)
    connect.initiate()
    for answer in answers[:-1]:
        assert connect.receive_data(answer) is False
    with pytest.raises(Error) as info:
        connect.receive_data(answers[-1])
    assert info.value.kind is kind
    assert words in str(info.value)
