"""What the wheel carries and declares: runner sources, the bake file, true dependencies."""

from __future__ import annotations

import ast
import email.parser
import re
import subprocess
import sys
import tomllib
import zipfile
from typing import TYPE_CHECKING

from executor.build import load_bake

from .conftest import REPO

if TYPE_CHECKING:
    from pathlib import Path

#: Import name -> distribution name, where they differ.
DISTRIBUTIONS = {"hcl2": "python-hcl2", "yaml": "pyyaml"}
#: Imported only where the caller has them already: the pytest plugin runs inside pytest (and
#: pytest-asyncio, when it is loaded); trio code runs only under trio, which brings sniffio.
PROVIDED_BY_THE_CALLER = {"pytest", "pytest_asyncio", "trio", "sniffio"}


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode())


def requirement_names(wheel: Path, *, extras: bool = False) -> dict[str, str]:
    """Core requirements (and with ``extras``, the extras' but dev): name -> the requirement."""
    found = {}
    for requirement in metadata(wheel).get_all("Requires-Dist") or []:
        if "extra ==" in requirement and (not extras or "extra == 'dev'" in requirement):
            continue
        name = re.split(r"[ ;<>=!~\[]", requirement, maxsplit=1)[0]
        found[name.lower().replace("_", "-")] = requirement
    return found


def third_party_imports() -> set[str]:
    """Top-level modules the package imports that are neither stdlib nor its own."""
    found: set[str] = set()
    for path in (REPO / "executor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "executor"}


def tracked(*paths: str) -> set[str]:
    done = subprocess.run(
        ["git", "ls-files", *paths], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_wheel_carries_the_bake_file_and_every_build_context(wheel: Path) -> None:
    """runners/, generators/ and the bake file are in executor/_data/; the seccomp profile ships."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    expected = {f"executor/_data/{path}" for path in tracked("runners", "generators")}
    assert expected, "git ls-files found nothing: not a checkout?"
    assert expected | {"executor/_data/docker-bake.hcl", "executor/container/seccomp.json"} <= names
    junk = [n for n in names if re.search(r"node_modules|__pycache__|\.py[co]$", n)]
    assert junk == []


def test_every_bake_context_resolves_inside_the_packaged_data(wheel: Path, tmp_path: Path) -> None:
    """The packaged bake file's contexts are packaged directories with their Dockerfiles."""
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path, [n for n in zf.namelist() if n.startswith("executor/_data/")])
    data = tmp_path / "executor" / "_data"
    built = {n: s for n, s in load_bake(data / "docker-bake.hcl").items() if s.tags}
    assert {"runner-python", "runner-node", "runner-go"} <= set(built)
    for name, spec in built.items():  # untagged targets (_common) are only inherited from
        assert spec.context.is_relative_to(data), (name, spec.context)
        assert (spec.context / spec.dockerfile).is_file(), name


def test_declared_dependencies_are_what_the_package_imports(wheel: Path) -> None:
    """Every third-party module executor/ imports is a requirement (core, or its extra's)."""
    declared = requirement_names(wheel)
    imported = {DISTRIBUTIONS.get(m, m) for m in third_party_imports() - PROVIDED_BY_THE_CALLER}
    assert imported - set(requirement_names(wheel, extras=True)) == set()
    # What the engine side and the command line import is core: a plain install gives a
    # working library and `executor` command.
    assert {"aiodocker", "aiohttp", "yarl", "click", "rich", "python-hcl2"} <= set(declared)
    assert declared["python-hcl2"].replace(" ", "").endswith(">=8.1")


def test_versions_agree(wheel: Path) -> None:
    """pyproject, the wheel's metadata and the bake file's VERSION default are one version."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    bake_default = load_bake(REPO / "docker-bake.hcl", {})["runner-python"].labels
    assert metadata(wheel)["Version"] == project["version"]
    assert bake_default["org.opencontainers.image.version"] == project["version"]
    assert metadata(wheel)["Name"] == "typed-executor"
