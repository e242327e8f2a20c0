"""A fast path for the common upgrade request: one regular expression.

h11 is about half of the Python work of a server handshake (a state
machine, an event object per step, a regex per header). Nearly every
request a WebSocket server sees is the same shape: one ``GET`` that arrives
whole in the first read, no body, a handful of well-formed headers. That
shape is matched here by one compiled pattern (the grammar of RFC 9110 and
9112, no wider than what h11 accepts), and its header lines are split with
``str`` methods. **Anything else** — an incomplete head, another method or
version, a body, a bare CR or LF, a control byte, obsolete line folding, a
limit reached — returns ``None``, and the caller parses the same bytes with
h11 as before, so every refusal (400, 413, 414, 431) and its message stay
h11's and wskit's, unchanged.

It replaced a path through httptools (llhttp, in C): its callbacks into
Python and the checks after it made it twice as slow as this pattern
(BENCHMARKS.md, handshakes).
"""

from __future__ import annotations

import re

__all__ = ["parse_request"]

# RFC 9110 5.6.2 token (a header name), 5.5 field-value (visible ASCII and
# obs-text, single spaces or tabs inside, optional whitespace around it),
# and the origin-form target of RFC 9112 3.2 as h11 reads it (visible ASCII).
_TOKEN = r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VCHAR = r"[\x21-\x7e\x80-\xff]"
_FIELD = rf"{_TOKEN}:[ \t]*(?:{_VCHAR}+(?:[ \t]+{_VCHAR}+)*)?[ \t]*\r\n"
# Matched against the head decoded as latin-1 (one str for the whole head:
# no decode per name and value).
_HEAD = re.compile(rf"GET ([\x21-\x7e]+) HTTP/1\.1\r\n((?:{_FIELD})*)\r\n")


def parse_request(data: bytes, *, max_head: int, max_headers: int, max_target: int,
                  ) -> tuple[str, list[tuple[str, str]], bytes] | None:
    """``(target, headers, trailing bytes)`` of a plain ``GET`` whose whole
    head is in ``data``, within the limits; ``None`` for anything else (the
    caller then parses ``data`` with h11). Header names come lowercased, as
    h11 hands them over; values without the whitespace around them."""
    if not data.startswith(b"GET "):
        return None
    # A head found within max_head bytes is within every size limit
    # ServerHandshake applies (what it counts is shorter than the raw head).
    end = data.find(b"\r\n\r\n", 0, max_head + 1)
    if end < 0:
        return None
    match = _HEAD.fullmatch(data[:end + 4].decode("latin-1"))
    if match is None:
        return None
    target, block = match.groups()
    lines = block.split("\r\n")
    lines.pop()  # the block ends with a line break
    if len(lines) > max_headers or len(target) > max_target:
        return None
    headers = []
    hosts = 0
    for line in lines:
        name, _, value = line.partition(":")
        name = name.lower()
        if name == "host":
            hosts += 1
        elif name == "content-length" or name == "transfer-encoding":
            return None  # a body: h11's business
        headers.append((name, value.strip(" \t")))
    if hosts != 1:
        return None  # h11 wants exactly one Host in HTTP/1.1
    return target, headers, data[end + 4:]
