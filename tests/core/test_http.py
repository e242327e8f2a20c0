"""Headers, Request, Response, Handshake: the HTTP values (``_core/http.py``)."""

from __future__ import annotations

import dataclasses

import pytest

from wskit import Error, Handshake, Headers, Request, Response


def test_headers_are_case_insensitive_and_multi_valued() -> None:
    headers = Headers([("X-A", "1"), ("x-a", "2"), ("B", "3, 4")])
    assert headers["x-A"] == "1"
    assert headers.get_all("X-A") == ["1", "2"]
    assert headers.tokens("b") == ["3", "4"]
    assert "x-a" in headers
    assert len(headers) == 2
    assert list(headers) == ["X-A", "B"]
    assert headers.get("missing") is None
    with pytest.raises(Error):
        Headers({"X": "a\r\nInjected: 1"})


def test_request_for_url() -> None:
    request = Request.for_url("wss://h:1/p/q?a=1&a=2&b=", headers={"Authorization": "t"},
                              subprotocols=["x", "y"], origin="https://o")
    assert request.method == "GET"
    assert request.path == "/p/q?a=1&a=2&b="
    assert request.query == {"a": ["1", "2"], "b": [""]}
    assert request.subprotocols == ["x", "y"]
    assert request.origin == "https://o"
    assert request.headers["authorization"] == "t"
    assert Request.for_url("ws://h").path == "/"


def test_response_values() -> None:
    response = Response(404, "nope")
    assert response.reason == "Not Found"
    assert response.body == b"nope"
    assert response.headers["content-type"].startswith("text/plain")
    html = Response(200, "<p>", {"Content-Type": "text/html"})
    assert html.headers.get_all("content-type") == ["text/html"]
    with pytest.raises(Error):
        Response(99)
    with pytest.raises(Error):
        Request.for_url("ws://h").reject(200)


def test_remote_addr_is_the_peer_unless_a_trusted_proxy_reported_the_client() -> None:
    request = Request("GET", "/", Headers({"X-Forwarded-For": "203.0.113.9, 10.0.0.1"}))
    base = Handshake(request, Response(101), ("10.0.0.1", 5), ("10.0.0.2", 80), None, ())
    assert base.remote_addr() == "10.0.0.1"  # the header alone means nothing
    forwarded = dataclasses.replace(base, client_addr="203.0.113.9")
    assert forwarded.remote_addr() == "203.0.113.9"
    assert dataclasses.replace(base, peer_addr=None).remote_addr() is None


def test_headers_equality_hash_and_repr() -> None:
    one = Headers([("A", "1")])
    assert one == Headers({"a": "1"})
    assert one != Headers({"a": "2"})
    assert one.__eq__({"A": "1"}) is NotImplemented
    assert hash(one) == hash(Headers([("A", "1")]))
    assert repr(one) == "Headers([('A', '1')])"


def test_unknown_status_has_an_empty_reason_and_rejections_are_responses() -> None:
    assert Response(599).reason == ""
    rejection = Request.for_url("ws://h").reject(403, "no", {"X-Why": "policy"})
    assert (rejection.status, rejection.body, rejection.headers["x-why"]) == \
        (403, b"no", "policy")
    assert not Request.for_url("ws://h").is_websocket




@pytest.mark.parametrize(("values", "found"), [
    (["Upgrade"], True),
    (["keep-alive, Upgrade"], True),
    (["keep-alive,upgrade  "], True),
    (["keep-alive", " UPGRADE "], True),
    (["keep-alive"], False),
    (["upgraded"], False),  # a token, not a substring
    (["x-upgrade, keep-alive"], False),
    ([], False),
])
def test_has_token(values: list[str], found: bool) -> None:
    headers = Headers([("Connection", v) for v in values])
    assert headers.has_token("connection", "upgrade") is found
    assert headers.has_token("CONNECTION", "Upgrade") is found
    assert found is any(t.lower() == "upgrade" for t in headers.tokens("Connection"))
