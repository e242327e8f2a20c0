"""A fast path for the common upgrade request: httptools (llhttp), when installed.

h11 is about half of the Python work of a server handshake (a state
machine, an event object per step, a regex per header). Nearly every
request a WebSocket server sees is the same shape: one ``GET`` that arrives
whole in the first read, no body, a handful of well-formed headers. That
shape is parsed here by httptools (the ``speedups`` extra; C, what uvicorn
uses) and checked against the rules h11 applies to it; **anything else** —
an incomplete head, another method, a body, an unusual byte, a limit
reached, a parse error — returns ``None`` and the caller parses the same
bytes with h11 as before, so every refusal (400, 413, 414, 431) and its
message stay h11's and wskit's, unchanged.

Without httptools, or with ``WSKIT_NO_EXTENSIONS=1``, :data:`AVAILABLE` is
False and h11 parses every request.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Any

__all__ = ["AVAILABLE", "parse_request"]

# RFC 9110 5.1 token (a header name) and 5.5 field-value after the parser
# trimmed the surrounding whitespace: what h11 accepts, nothing more.
_NAME = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff](?:[ \t]*[\x21-\x7e\x80-\xff])*)?")
# Request-target characters h11 accepts (printable ASCII but space).
_TARGET = re.compile(rb"[\x21-\x7e]+")


def _load() -> Any:
    if os.environ.get("WSKIT_NO_EXTENSIONS", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module("httptools")
    except ImportError:  # pragma: no cover (the speedups extra is not installed)
        return None


_httptools = _load()
#: Whether the fast path is there (httptools installed and not disabled).
AVAILABLE = _httptools is not None


class _Collect:
    """httptools' callbacks: the target and the header pairs."""

    __slots__ = ("headers", "target")

    def __init__(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp drops the whitespace before a value, not after it; h11
        # drops both (RFC 9110 5.5: OWS around a field value).
        self.headers.append((name, value.rstrip(b" \t")))


def parse_request(data: bytes, *, max_head: int, max_headers: int, max_target: int,
                  ) -> tuple[bytes, list[tuple[bytes, bytes]], bytes] | None:
    """``(target, headers, trailing bytes)`` of a plain ``GET`` whose whole
    head is in ``data``, within the limits; ``None`` for anything else (the
    caller then parses ``data`` with h11)."""
    if _httptools is None or not data.startswith(b"GET "):
        return None
    # A head found within max_head bytes is within every size limit
    # ServerHandshake applies (what it counts is shorter than the raw head).
    end = data.find(b"\r\n\r\n", 0, max_head + 1)
    if end < 0:
        return None
    head = data[:end + 4]
    if head.count(b"\n") != head.count(b"\r\n") or head.count(b"\r") != head.count(b"\n"):
        return None  # a bare CR or LF: h11 decides what it means
    collect = _Collect()
    parser = _httptools.HttpRequestParser(collect)
    try:
        parser.feed_data(head)
    except _httptools.HttpParserUpgrade:
        pass  # the head is complete and asks for an upgrade: what we expect
    except _httptools.HttpParserError:
        return None
    headers, target = collect.headers, collect.target
    if (parser.get_http_version() != "1.1" or len(headers) > max_headers
            or len(target) > max_target or not _TARGET.fullmatch(target)):
        return None
    hosts = 0
    for name, value in headers:
        # llhttp (strict, httptools' default) refuses all of these itself;
        # checked again in case a release relaxes what it accepts.
        if not _NAME.fullmatch(name) or not _VALUE.fullmatch(value):  # pragma: no cover
            return None
        lower = name.lower()
        if lower == b"host":
            hosts += 1
        elif lower == b"content-length" or lower == b"transfer-encoding":
            return None  # a body: h11's business
    if hosts != 1:
        return None  # h11 wants exactly one Host in HTTP/1.1
    # Names lowercased, as h11 hands them over.
    return target, [(name.lower(), value) for name, value in headers], data[end + 4:]
