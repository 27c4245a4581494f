"""The README's example runs and prints what the README says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_example_output() -> None:
    code, output = re.findall(r"```(?:python|text)\n(.*?)```", README, re.S)[:2]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == output


def test_ci_runs_the_readme_test_command() -> None:
    match = re.search(r"install and run the whole test suite.*?`([^`]+)`", README)
    assert match is not None
    command = match.group(1)
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert ci.rstrip().splitlines()[-1] == command
