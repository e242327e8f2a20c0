"""Static checks the project promises: ``mypy --strict`` and ``ruff`` clean."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_mypy_strict() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "wskit"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff() -> None:
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "wskit", "tests", "examples"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
