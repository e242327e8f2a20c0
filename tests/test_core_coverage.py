"""Branch coverage of ``wskit/_core``: 100%, reached by ``tests/core`` alone.

The core is small and sans-I/O, so its unit tests should exercise every
branch (as h11's do); a branch only the socket tests reach is a unit test
missing. A line that cannot run carries ``# pragma: no cover`` and a comment
saying why. The settings are ``[coverage:run]`` / ``[coverage:report]`` in
``setup.cfg`` (``fail_under = 100``).

Why coverage.py in a subprocess, not ``pytest --cov`` on the whole run: the
``wskit`` pytest plugin (the ``pytest11`` entry point, ``wskit.testing``)
imports ``wskit`` before pytest-cov starts, so every module-level line of
the core (imports, ``def``, ``class``) would read as missed; ``coverage run
-m pytest`` starts measuring before pytest loads any plugin. It also keeps
the measurement off the other 3,000 tests (a few seconds, not minutes) and
away from the pytest runs that tests start themselves.

The report is printed in every pytest run that collects this module.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _measure(tmp_path: pathlib.Path, *tests: str) -> tuple[subprocess.CompletedProcess[str],
                                                            subprocess.CompletedProcess[str]]:
    """Run ``tests`` under coverage.py; the run and its ``coverage report``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["COVERAGE_FILE"] = str(tmp_path / "coverage.dat")
    run = subprocess.run(
        [sys.executable, "-m", "coverage", "run", "-m", "pytest", "-q", "-p", "no:cacheprovider",
         *tests],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    report = subprocess.run([sys.executable, "-m", "coverage", "report"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    return run, report


@pytest.mark.slow
def test_core_tests_cover_every_branch_of_the_core(
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, report = _measure(tmp_path, "tests/core")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with capsys.disabled():
        print("\n[coverage of wskit/_core by tests/core]\n" + report.stdout.rstrip())
    # fail_under = 100 in setup.cfg: coverage report exits with 2 below it.
    assert report.returncode == 0, report.stdout + report.stderr


@pytest.mark.slow
def test_the_coverage_gate_can_fail(tmp_path: pathlib.Path) -> None:
    # Control: one test module alone leaves most of the core unrun.
    run, report = _measure(tmp_path, "tests/core/test_messages.py")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert report.returncode == 2, report.stdout + report.stderr
    assert "wskit/_core/protocol.py" in report.stdout
    assert "fail-under" in (report.stdout + report.stderr).lower().replace("_", "-")
