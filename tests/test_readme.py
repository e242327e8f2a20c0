"""The README's commands are the ones the project really runs."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", readme)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = next(c for c in _commands() if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_readme_run_command_starts_an_example_that_exists() -> None:
    run_command = _commands()[0]
    script = re.search(r"(examples/\S+\.py)", run_command)
    assert script is not None
    assert (ROOT / script.group(1)).is_file()
