"""Settings: defaults and validation (``wskit/_settings.py``)."""

from __future__ import annotations

import dataclasses

import pytest

from wskit import Error, Settings


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
