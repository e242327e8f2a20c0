"""The core and conformance suites against the newest wsproto release.

``wskit/_core/frames.py`` relies on wsproto internals that its semantic
versioning does not cover, and ``setup.cfg`` pins ``wsproto<1.4``. This job
says, before anyone lifts the pin, whether the newest wsproto (pre-releases
included) still works: it builds a fresh virtualenv (a real one, not
``--system-site-packages``, so nothing of ours leaks in; pip's cache makes
it quick), installs wskit with its test tools, upgrades wsproto past the
pin, and runs ``tests/core`` and ``tests/conformance`` there.

The deep fuzz run (``slow``, ~90 s) and the hypothesis fuzz module are left
out to keep the job near a minute: the frame layer wsproto provides is
exercised by every conformance case. It needs PyPI (or pip's cache).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
_TOOLS = ["pytest", "pytest-trio", "hypothesis", "websockets", "trustme"]


def _run(args: list[str], *, timeout: float, cwd: pathlib.Path | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env)


@pytest.mark.slow
@pytest.mark.wsproto_latest
def test_core_and_conformance_pass_with_the_newest_wsproto(
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], timeout=60)
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    # Editable: a plain install would build in the source tree (build/).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PIP_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    installed = _run([python, "-m", "pip", "install", "-q", "-e", str(ROOT), *_TOOLS],
                     timeout=240, env=env, cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    upgraded = _run([python, "-m", "pip", "install", "-q", "-U", "--pre", "wsproto"],
                    timeout=120, env=env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    version = _run([python, "-c", "import importlib.metadata as m; print(m.version('wsproto'))"],
                   timeout=30).stdout.strip()
    with capsys.disabled():
        print(f"\n[wsproto_latest] testing against wsproto {version} "
              f"(setup in {time.monotonic() - started:.0f} s)")
    # Run from the source tree (its setup.cfg and conftests), with the
    # venv's interpreter and packages.
    result = _run(
        [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
         "-m", "not slow", "--deselect", "tests/conformance/test_fuzz.py",
         "tests/core", "tests/conformance"],
        timeout=300, cwd=ROOT, env=env,
    )
    tail = "\n".join(result.stdout.splitlines()[-15:])
    with capsys.disabled():
        print(f"[wsproto_latest] wsproto {version}: {tail.splitlines()[-1] if tail else ''} "
              f"({time.monotonic() - started:.0f} s in all)")
    assert result.returncode == 0, f"with wsproto {version}:\n{tail}\n{result.stderr[-2000:]}"
