"""The pure-Python path, tested as thoroughly as the accelerated one.

``wskit._core._mask`` and ``wskit._core._frames`` (C) are optional: an
install without a C compiler uses the pure-Python masking and small-frame
decoder. Two checks keep that path honest:

- the core and conformance suites run again in a subprocess with
  ``WSKIT_NO_EXTENSIONS=1``, and that very process asserts the Python masker
  is the one in use before it runs them;
- ``pip install .`` succeeds with ``CC=false`` (a compiler that always
  fails), in a fresh virtualenv, from a copy of the source tree, and the
  installed wskit then masks in Python.

The deep fuzz run (``slow``) and the hypothesis fuzz module are left out of
the first, as in ``test_wsproto_latest.py``: every conformance case goes
through the masker.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Runs in the subprocess: the suites, then a look at the masker the very
# modules they ran against used (imported after pytest starts, so that
# pytest can still rewrite wskit's asserts). tests/core/test_masking.py
# also checks it from inside the run.
_RUN_PURE = """
import sys
import pytest
status = pytest.main(sys.argv[1:])
from wskit._core import frames, masking, smallframes
assert masking.IMPLEMENTATION == "python", masking.IMPLEMENTATION
assert frames.apply_mask is masking.apply_mask_python
assert smallframes.take_small is smallframes.take_small_python
assert frames.mask_frame is masking.mask_frame_python
assert frames.MessageBuffer is masking.MessageBufferPython
print("[pure] masking implementation:", masking.IMPLEMENTATION, flush=True)
print("[pure] small frames implementation:", smallframes.IMPLEMENTATION, flush=True)
sys.exit(status)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PIP_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def _tracked_copy(dst: pathlib.Path) -> pathlib.Path:
    """A copy of the files git tracks (an untracked file would be missed
    by a release too)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dst / name)
    return dst


@pytest.mark.slow
def test_core_and_conformance_pass_in_pure_python() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _RUN_PURE, "-x", "-q", "-p", "no:cacheprovider",
         "-m", "not slow", "--deselect", "tests/conformance/test_fuzz.py",
         "tests/core", "tests/conformance"],
        cwd=ROOT, env=_env(WSKIT_NO_EXTENSIONS="1"), capture_output=True, text=True,
        timeout=600,
    )
    tail = "\n".join(result.stdout.splitlines()[-15:])
    assert result.returncode == 0, f"{tail}\n{result.stderr[-2000:]}"
    assert "[pure] masking implementation: python" in result.stdout
    assert "[pure] small frames implementation: python" in result.stdout
    summary = [line for line in result.stdout.splitlines() if " passed" in line]
    assert summary and " failed" not in summary[-1], tail


@pytest.mark.slow
def test_install_without_a_c_compiler(tmp_path: pathlib.Path) -> None:
    # A plain install builds in its source tree: a copy, not the checkout.
    src = _tracked_copy(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=240)
    python = str(venv / "bin" / "python")
    env = _env(CC="false", CXX="false", LDSHARED="false")
    installed = subprocess.run([python, "-m", "pip", "install", "-v", str(src)], cwd=tmp_path,
                               env=env, capture_output=True, text=True, timeout=420)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    # The compiler was really tried, and failed: the build fell back.
    log = installed.stdout + installed.stderr
    assert 'building extension "wskit._core._mask" failed' in log, log[-3000:]
    assert 'building extension "wskit._core._frames" failed' in log, log[-3000:]
    check = subprocess.run(
        [python, "-c", "from wskit._core import masking, smallframes; import wskit; "
                       "print(masking.IMPLEMENTATION, smallframes.IMPLEMENTATION, "
                       "wskit.__file__)"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert check.returncode == 0, check.stderr
    masker, small, location = check.stdout.split()
    assert (masker, small) == ("python", "python")
    assert location.startswith(str(venv))


@pytest.mark.slow
def test_the_sdist_carries_what_the_extensions_include(tmp_path: pathlib.Path) -> None:
    # setup.py writes egg-info beside the sources: a copy, not the checkout.
    src = _tracked_copy(tmp_path / "src")
    built = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)],
                           cwd=src, env=_env(), capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (archive,) = tmp_path.glob("wskit-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    sources = sorted((ROOT / "wskit" / "_core").glob("*.c"))
    assert len(sources) == 2, sources
    for source in sources:
        assert f"wskit/_core/{source.name}" in names
        for header in re.findall(r'#include "([^"]+)"', source.read_text()):
            assert f"wskit/_core/{header}" in names, (source.name, header)
