"""Every runnable code block of README.md runs, so the documentation cannot rot.

``python`` blocks run as scripts (a block defining ``test_`` functions runs under pytest),
``bash`` blocks under ``bash -euo pipefail`` with the venv's ``executor`` on PATH, both from
the repository root. A block preceded by ``<!-- not-run: reason -->`` is skipped; other
languages (json, dockerfile, text) are illustrations and are not run.

``EXECUTOR_{PYTHON,NODE,GO,JUDGE}_IMAGE`` point the blocks'
``executor/runner-<lang>:latest`` at other images, as they do for the container tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BLOCK = re.compile(
    r"(?:<!--\s*not-run:(?P<reason>[^>]*)-->\s*\n)?^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
RUNNABLE = {"python", "bash", "console", "sh"}
#: Blocks mentioning these need a Docker engine (and carry the docker marker).
NEEDS_ENGINE = re.compile(
    r"ContainerExecutor|CodeExecutor|evaluate_programs|--runner|--image"
    r"|executor (doctor|images|reap|session)|runner-python|Session"
)
IMAGES = {
    f"executor/runner-{lang}:latest": os.environ.get(f"EXECUTOR_{lang.upper()}_IMAGE")
    for lang in ("python", "node", "go", "judge")
}


def _images(code: str) -> str:
    """The block with the stock runner images replaced by the EXECUTOR_*_IMAGE ones."""
    for stock, image in IMAGES.items():
        if image:
            code = code.replace(stock, image)
    return code


MAX_NOT_RUN = 3


def _blocks() -> list[tuple[int, str, str, str | None]]:
    text = README.read_text()
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("lang")) + 1
        reason = match.group("reason")
        found.append((line, match.group("lang"), match.group("code"), reason and reason.strip()))
    return found


def _params() -> list[object]:
    params = []
    for line, lang, code, reason in _blocks():
        if lang not in RUNNABLE:
            continue
        marks = [pytest.mark.docker] if NEEDS_ENGINE.search(code) else []
        if reason:
            marks.append(pytest.mark.skip(reason=f"not-run: {reason}"))
        params.append(pytest.param(lang, code, marks=marks, id=f"{lang}-line{line}"))
    return params


def test_readme_has_runnable_blocks_and_few_exceptions() -> None:
    """The README has python and bash blocks; at most a few are marked not-run, with reasons."""
    blocks = _blocks()
    langs = {lang for _, lang, _, _ in blocks}
    assert {"python", "bash"} <= langs
    not_run = [b for b in blocks if b[3] is not None]
    assert len(not_run) <= MAX_NOT_RUN, not_run
    assert all(reason for *_, reason in not_run)


@pytest.mark.parametrize(("lang", "code"), _params())
def test_readme_block_runs(lang: str, code: str, tmp_path: Path) -> None:
    """The block exits 0 when run from the repository root."""
    code = _images(code)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    if lang == "python":
        script = tmp_path / ("test_block.py" if "def test_" in code else "block.py")
        script.write_text(code)
        command = [sys.executable, str(script)]
        if "def test_" in code:
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
    else:
        command = ["bash", "-euo", "pipefail", "-c", code]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"


def test_measured_times_stay_out_of_the_opening() -> None:
    """The opening, up to its Contents, quotes no measured times; Performance names its run."""
    text = README.read_text()
    opening = text[: text.index("\n## Contents\n")]
    measured = re.search(r"\d\s?(ms|µs|s per call|calls/s)\b", opening)
    assert measured is None, f"{measured}: measured numbers belong in Performance"
    performance = text[text.index("\n## Performance\n") :]
    assert "make bench" in performance.split("\n## ", 2)[1]
