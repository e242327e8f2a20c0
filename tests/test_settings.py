"""Settings: defaults and validation (``wskit/_settings.py``)."""

from __future__ import annotations

import dataclasses

import pytest

from wskit import Error, ErrorKind, Settings


def test_settings_defaults_and_validation() -> None:
    settings = Settings()
    assert settings.max_message_size == 2**20
    assert settings.max_connections is not None
    assert settings.max_connections >= 1000
    assert settings.compression == "deflate"
    assert 5 <= (settings.handshake_timeout or 0) <= 15
    assert 10 <= (settings.ping_interval or 0) <= 30
    assert Settings(max_message_size=None, ping_interval=None).ping_interval is None
    with pytest.raises(Error):
        Settings(max_message_size=0)
    with pytest.raises(Error):
        Settings(compression="gzip")  # type: ignore[arg-type]
    with pytest.raises(Error):
        Settings(allowed_origins="https://a")
    with pytest.raises(TypeError):
        Settings(1)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_connections = 1  # type: ignore[misc]


def test_proxy_settings_are_checked_and_normalised() -> None:
    settings = Settings(trusted_proxies=["10.0.0.0/8", "::1"])
    assert settings.trusted_proxies == ("10.0.0.0/8", "::1")  # a tuple: hashable, fixed
    assert settings.proxies() == ("10.0.0.0/8", "::1")
    assert Settings().proxies() == ()
    assert Settings(trust_proxy_headers=True).proxies() == ("127.0.0.0/8", "::1")
    # Naming the proxies wins over the loopback shorthand.
    assert Settings(trust_proxy_headers=True, trusted_proxies=["10.0.0.5"]).proxies() == \
        ("10.0.0.5",)
    for bad, words in [
        ({"trusted_proxies": "10.0.0.5"}, "not one string"),
        ({"trusted_proxies": ["nginx.local"]}, "'nginx.local' is not an IP address"),
        ({"proxy_hops": 0}, "proxy_hops must be an integer >= 1"),
        ({"proxy_hops": True}, "proxy_hops must be an integer >= 1"),
        ({"proxy_header": "x-real-ip"}, "'x-forwarded-for' or 'forwarded'"),
    ]:
        with pytest.raises(Error) as info:
            Settings(**bad)  # type: ignore[arg-type]
        assert info.value.kind is ErrorKind.USAGE
        assert words in str(info.value), (bad, str(info.value))
