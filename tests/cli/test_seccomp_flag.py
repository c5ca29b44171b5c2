"""``--seccomp default|engine|PATH`` of ``run`` and ``batch``: it reaches ContainerConfig, a bad
profile is a config error before any container, and in a container the profile is applied."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click
import pytest
from click.testing import CliRunner

from executor.cli.options import build_executor, executor_options, run_options
from executor.container.config import _default_profile

from .conftest import RUN_LABEL, TASKS, executor_cli

if TYPE_CHECKING:
    from pathlib import Path

DOUBLE = str(TASKS / "double.py")


def seccomp_of(*args: str) -> tuple[int, Any, str]:
    """Parse the executor flags as ``run`` does; the built config's seccomp setting."""
    seen: dict[str, Any] = {}

    @click.command()
    @executor_options
    def probe(**kwargs: Any) -> None:
        ex = build_executor(None, run_options(kwargs))
        seen.update(seccomp=ex.config.seccomp, json=ex.config.seccomp_json)  # type: ignore[attr-defined]

    result = CliRunner().invoke(probe, list(args))
    return result.exit_code, seen, result.stderr + (result.output if result.exit_code else "")


@pytest.mark.parametrize("value", [None, "default", "engine"])
def test_seccomp_flag_reaches_the_config(value: str | None) -> None:
    """Without --seccomp the library's profile applies; default and engine are passed on."""
    code, seen, err = seccomp_of("--image", "img:1", *(["--seccomp", value] if value else []))
    assert code == 0, err
    assert seen["seccomp"] == (value or "default")
    assert seen["json"] == (None if value == "engine" else _default_profile())


def test_seccomp_flag_takes_a_profile_path(tmp_path: Path) -> None:
    """--seccomp PATH loads that JSON profile into the config."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    code, seen, err = seccomp_of("--image", "img:1", "--seccomp", str(path))
    assert code == 0, err
    assert json.loads(seen["json"]) == profile


def test_seccomp_flag_is_container_only() -> None:
    """--seccomp without --runner/--image is a usage error (local runs are not isolated)."""
    result = executor_cli("run", DOUBLE, "--seccomp", "engine", "--input", "1")
    assert result.code == 2, result.stderr
    assert "--seccomp apply only in a container" in result.stderr


@pytest.mark.parametrize("command", ["run", "batch"])
def test_unreadable_profile_is_a_config_error(command: str, tmp_path: Path) -> None:
    """A --seccomp path that is missing or not a profile exits 10 with CONFIG_INVALID."""
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    for path in (str(tmp_path / "missing.json"), str(bad)):
        feed = ["--inputs", "-"] if command == "batch" else []
        result = executor_cli(
            command, DOUBLE, "--runner", "python", "--seccomp", path, *feed, input='{"n": 1}\n'
        )
        assert (result.code, result.error()["code"]) == (10, "CONFIG_INVALID"), result.stderr
        assert "seccomp" in result.error()["message"]


@pytest.mark.docker
def test_seccomp_flag_applies_the_profile_in_the_container(tmp_path: Path) -> None:
    """The task meets the profile --seccomp names: the default refuses io_uring, a profile
    allowing everything lets it through."""
    permissive = tmp_path / "allow.json"
    permissive.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
    task = f"{DOUBLE}:io_uring"
    outcomes = {}
    for value in ("default", str(permissive)):
        result = executor_cli(
            "run", task, "--runner", "python", "--seccomp", value, "--label", RUN_LABEL,
            "--input", "{}",
        )  # fmt: skip
        assert result.code == 0, result.stderr
        outcomes[value] = result.json()
    assert outcomes == {"default": "EPERM", str(permissive): "ok"}
