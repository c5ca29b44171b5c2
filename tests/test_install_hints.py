"""Install hints name the distribution, ``typed-executor``: ``pip install executor`` installs an
unrelated PyPI project of that name, so a hint that says it sends a new user astray."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: ``executor`` as the thing being installed or as the name of an extra, not ``typed-executor``.
WRONG = re.compile(
    r"pip3?\s+install\s+(?:-\S+\s+)*['\"]?executor\b(?![-\w/.])"
    r"|(?<![-\w/])executor\[[a-z0-9_,-]+\]"
)
SUFFIXES = {".py", ".md", ".mjs", ".toml", ".cfg", ".txt", ".hcl", ".yml", ".yaml", ".rst"}


def _files() -> list[Path]:
    """The package, the docs, the README and the examples (this file excepted)."""
    found = [REPO / "README.md"]
    for top in ("executor", "docs", "examples"):
        found += [p for p in (REPO / top).rglob("*") if p.is_file() and p.suffix in SUFFIXES]
    return [p for p in found if p != Path(__file__).resolve()]


def test_the_pattern_catches_the_wrong_forms_and_spares_the_right_ones() -> None:
    """The check flags `pip install executor` and `executor[ray]`, never `typed-executor[ray]`."""
    wrong = ["pip install executor", "pip install 'executor[ray]'", "extra `executor[k8s]`"]
    right = [
        "pip install typed-executor",
        "pip install 'typed-executor[ray]'",
        "pip install -e '.[dev,ray]'",
        "pip install executor-tools",
        "registry.example.com/executor[ray]",
    ]
    assert all(WRONG.search(s) for s in wrong)
    assert not any(WRONG.search(s) for s in right)


def test_no_install_hint_names_the_unrelated_executor_project() -> None:
    """No file of the package, docs, README or examples tells users to install `executor`."""
    bad = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in _files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if WRONG.search(line)
    ]
    assert not bad, "install hints must name typed-executor:\n" + "\n".join(bad)
