"""``executor session``: the prompt sends each cell to one session and prints what came back."""

from __future__ import annotations

import pytest

from .conftest import RUN_LABEL, executor_cli

pytestmark = pytest.mark.docker


def test_python_prompt_keeps_state_and_reports_errors() -> None:
    """Cells typed at the Python prompt share one interpreter; a block ends at an empty line,
    values are echoed, tracebacks go to stderr, a lost interpreter is said and replaced."""
    cells = "x = 2\nfor i in range(2):\n    print(i)\n\nx * 21\n1/0\nimport os\nos._exit(1)\nx\n"
    done = executor_cli("session", "python", "--label", RUN_LABEL, input=cells)
    assert done.code == 0, done.stderr
    assert done.stdout.split() == ["0", "1", "42"]
    assert "ZeroDivisionError" in done.stderr
    assert "session lost" in done.stderr and "NameError" in done.stderr


def test_bash_prompt_keeps_the_directory() -> None:
    """Lines typed at the bash prompt run in one shell: cd and variables carry over."""
    done = executor_cli(
        "session", "bash", "--label", RUN_LABEL, input="cd /tmp; y=3\necho $y $(pwd)\n"
    )
    assert done.code == 0, done.stderr
    assert done.stdout == "3 /tmp\n"
