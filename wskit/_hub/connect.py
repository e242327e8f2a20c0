"""Connecting to Redis: the coredis client from ``Settings.backplane``, and
what a failure to start means, in words a user can act on.

The URL is coredis' (``coredis.Redis.from_url``): ``redis://[[user]:
password@]host:port/db``, or ``rediss://`` for TLS, whose options are query
parameters: ``ssl_ca_certs`` (the CA file, or directory, that signed
Redis' certificate; without it, the system's trusted CAs), ``ssl_certfile``
and ``ssl_keyfile`` (a client certificate, for a Redis with
``tls-auth-clients yes``), ``ssl_cert_reqs`` (``required`` by default for a
client; ``none`` skips the check: not for production) and
``ssl_check_hostname``. coredis leaves the host name unchecked unless told;
wskit checks it unless the URL says ``ssl_check_hostname=false``, as a TLS
client should (a certificate for another name, signed by the same CA, is
refused).

Files named in the URL are checked before connecting: a missing one is an
``Error(USAGE)`` naming it, not a TLS failure.
"""

from __future__ import annotations

import os
import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

import coredis
import coredis.exceptions

from .._errors import Error, ErrorKind
from .._settings import redact

__all__ = ["explain", "open_client"]

_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def open_client(url: str, *, lease: float) -> Any:
    """The coredis client for ``url`` (not connected yet). Raises
    ``Error(USAGE)`` for a URL or TLS options it cannot use."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    for name in _FILES:
        for path in query.get(name, ()):
            if not os.path.exists(path):
                raise Error(f"backplane URL {redact(url)!r}: {name}={path!r}: no such file",
                            ErrorKind.USAGE)
    if parts.scheme == "rediss" and "ssl_check_hostname" not in query:
        url += ("&" if parts.query else "?") + "ssl_check_hostname=true"
    try:
        return coredis.Redis.from_url(url, connect_timeout=2.0,
                                      stream_timeout=max(2.0, lease))
    except (ValueError, TypeError, OSError) as exc:  # ssl.SSLError is an OSError
        raise Error(f"invalid backplane URL {redact(url)!r}: {exc}", ErrorKind.USAGE) from None


def explain(url: str, cause: BaseException) -> Error:
    """The ``Error(BACKPLANE)`` for a node that could not start: Redis
    unreachable, a password refused, a TLS handshake that failed."""
    shown = redact(url)
    if isinstance(cause, coredis.exceptions.AuthenticationRequiredError):
        return Error(f"cannot use the backplane at {shown}: Redis requires a password; "
                     "give it in the URL (redis://:PASSWORD@host:port/db, or "
                     "redis://USER:PASSWORD@… for an ACL user)", ErrorKind.BACKPLANE)
    if isinstance(cause, coredis.exceptions.AuthenticationError):
        return Error(f"cannot use the backplane at {shown}: Redis refused the credentials "
                     f"in the URL ({cause})", ErrorKind.BACKPLANE)
    tls = _tls_failure(cause)
    if isinstance(tls, ssl.SSLCertVerificationError):
        why = f"certificate verify failed: {tls.verify_message}"
        if "hostname" in why.lower():
            advice = "connect by a name the certificate holds"
        else:
            advice = ("trust the CA that signed Redis' certificate: "
                      "rediss://host:port/db?ssl_ca_certs=/path/to/ca.pem")
        return Error(f"cannot reach the backplane at {shown}: TLS handshake failed: {why} "
                     f"({advice})", ErrorKind.BACKPLANE)
    if tls is not None:
        return Error(f"cannot reach the backplane at {shown}: TLS handshake failed: {tls} "
                     "(does that port speak TLS? redis-server --tls-port)",
                     ErrorKind.BACKPLANE)
    return Error(f"cannot reach the backplane at {shown}: {cause} (is redis-server running "
                 "there? check Settings.backplane / --backplane)", ErrorKind.BACKPLANE)


def _tls_failure(exc: BaseException | None) -> ssl.SSLError | None:
    """The TLS error behind ``exc`` (coredis wraps it in its own), if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ssl.SSLError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
