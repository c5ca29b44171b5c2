"""``--mode``/``--containers`` (and ``--fork``) of ``run`` and ``batch``, and the old
``--reuse``/``--pool-size`` flags still working with a deprecation note on stderr."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from executor.cli.options import build_executor, executor_options, run_options

from .conftest import TASKS, executor_cli

DOUBLE = str(TASKS / "double.py")


def parse(*args: str) -> tuple[int, dict[str, Any], str]:
    """Parse the executor flags as ``run`` does and build the executor (no engine call)."""
    seen: dict[str, Any] = {}

    @click.command()
    @executor_options
    def probe(**kwargs: Any) -> None:
        ex = build_executor(None, run_options(kwargs))
        seen.update(mode=ex.config.mode, containers=ex.config.containers)  # type: ignore[attr-defined]

    result = CliRunner().invoke(probe, list(args))
    return result.exit_code, seen, result.stderr + (result.output if result.exit_code else "")


@pytest.mark.parametrize(
    ("args", "mode", "containers"),
    [
        ([], "fresh", 0),
        (["--mode", "pool"], "pool", 4),
        (["--mode", "pool", "--containers", "2"], "pool", 2),
        (["--mode", "reuse", "--containers", "0"], "reuse", 0),
        (["--mode", "fork"], "fork", 4),
        (["--fork"], "fork", 4),
        (["--fork", "--mode", "fork", "--containers", "3"], "fork", 3),
    ],
)
def test_mode_and_containers_flags_build_that_config(
    args: list[str], mode: str, containers: int
) -> None:
    """--mode and --containers (and --fork, short for --mode fork) reach ContainerConfig."""
    code, seen, err = parse("--image", "img:1", *args)
    assert code == 0, err
    assert seen == {"mode": mode, "containers": containers}


@pytest.mark.parametrize(
    ("args", "mode", "containers", "note"),
    [
        (["--reuse"], "reuse", 4, "--reuse is deprecated since 0.3: use --mode reuse"),
        (["--pool-size", "3"], "pool", 3, "use --mode pool --containers 3"),
        (["--reuse", "--pool-size", "2"], "reuse", 2, "use --mode reuse --containers 2"),
        (["--fork", "--pool-size", "2"], "fork", 2, "use --mode fork --containers 2"),
    ],
)
def test_old_flags_still_work_and_say_what_replaces_them(
    args: list[str], mode: str, containers: int, note: str
) -> None:
    """--reuse and --pool-size keep working for 0.3, with a note on stderr naming the new flags."""
    code, seen, err = parse("--image", "img:1", *args)
    assert code == 0, err
    assert seen == {"mode": mode, "containers": containers}
    assert note in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "img:1", "--fork", "--mode", "reuse"], "different modes: choose one"),
        (["--image", "img:1", "--reuse", "--fork"], "different modes: choose one"),
        (["--image", "img:1", "--mode", "fresh", "--containers", "2"], "use --mode pool"),
        (["--image", "img:1", "--containers", "2"], "--containers needs a --mode"),
        (["--image", "img:1", "--pool-size", "2", "--containers", "3"], "disagree"),
        (["--mode", "fork"], "apply only in a container"),
    ],
)
def test_mode_flags_that_do_not_fit_are_usage_errors(args: list[str], message: str) -> None:
    """Contradicting or misplaced mode flags are usage errors (exit 2) that say why."""
    code, _, err = parse(*args)
    assert code == 2
    assert message in err


def test_help_offers_mode_and_hides_the_old_flags() -> None:
    """``run --help`` shows --mode/--containers/--fork, not the deprecated flags."""
    result = executor_cli("run", "--help")
    assert "--mode" in result.stdout and "--containers" in result.stdout
    assert "--pool-size" not in result.stdout and "--reuse" not in result.stdout


def test_old_flag_through_the_real_command_notes_it_on_stderr() -> None:
    """``executor run --pool-size`` parses, says it is deprecated, then meets the (absent)
    engine as any run would: exit 9."""
    result = executor_cli(
        "run",
        DOUBLE,
        "--runner",
        "python",
        "--pool-size",
        "1",
        "--input",
        '{"n": 1}',
        env={"DOCKER_HOST": "tcp://127.0.0.1:1"},
        timeout=60,
    )
    assert "--pool-size is deprecated since 0.3: use --mode pool --containers 1" in result.stderr
    assert result.code == 9, result.stderr
