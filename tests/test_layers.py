"""The architecture holds: the sans-I/O core never imports trio."""

from __future__ import annotations

import subprocess
import sys

# The package __init__ imports the Trio layer, so the probe registers a bare
# parent package and imports only the core modules beneath it.
_PROBE = """
import importlib.util, pathlib, sys, types
root = pathlib.Path(importlib.util.find_spec("wskit").origin).parent
pkg = types.ModuleType("wskit")
pkg.__path__ = [str(root)]
sys.modules["wskit"] = pkg
import wskit._core.handshake, wskit._core.http, wskit._core.messages, wskit._core.protocol
print(",".join(sorted(m for m in sys.modules if m == "trio" or m.startswith("trio."))))
"""


def test_core_does_not_import_trio() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "", f"wskit._core imported: {out.stdout.strip()}"


def test_probe_can_fail() -> None:
    # The same probe, on a module that does import trio, must see it.
    probe = _PROBE.replace("import wskit._core.handshake", "import wskit._websocket, "
                           "wskit._core.handshake")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert "trio" in out.stdout.split(",")
