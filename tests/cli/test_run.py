"""``executor run``: targets, input forms, output on stdout, errors and exit statuses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO, RUN_LABEL, TASKS, executor_cli

DOUBLE = str(TASKS / "double.py")


def test_import_executor_stays_light() -> None:
    """``import executor`` imports neither click nor rich (the CLI is imported lazily)."""
    code = "import sys, executor; print(sorted(m for m in ('click', 'rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_console_script_and_module_agree() -> None:
    """The installed ``executor`` script and ``python -m executor`` are the same program."""
    script = Path(sys.executable).parent / "executor"
    done = subprocess.run(
        [str(script), "run", DOUBLE, "--input", '{"n": 4}'],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, '{"n":8}\n')
    assert executor_cli("--version").stdout.startswith("executor, version")


def test_run_file_uses_its_execute_function() -> None:
    """``file.py`` runs its ``execute``; the output is one JSON line on stdout."""
    result = executor_cli("run", DOUBLE, "--input", '{"n": 21}')
    assert (result.code, result.json(), result.stderr) == (0, {"n": 42}, "")


def test_run_file_colon_function() -> None:
    """``file.py:function`` picks another function of the file."""
    result = executor_cli("run", f"{DOUBLE}:sleepy", "--input", '{"seconds": 0}')
    assert (result.code, result.json()) == (0, "woke")


def test_run_module_colon_function(tmp_path: Path) -> None:
    """``module:function`` imports the module from the current directory."""
    result = executor_cli("run", "clitask:square", "--input", "7", cwd=TASKS)
    assert (result.code, result.json()) == (0, 49)


def test_input_from_stdin_and_from_file(tmp_path: Path) -> None:
    """``--input -`` (or no --input with a pipe) reads stdin; ``@file`` reads a file."""
    assert executor_cli("run", DOUBLE, "--input", "-", input='{"n": 1}').json() == {"n": 2}
    assert executor_cli("run", DOUBLE, input='{"n": 2}').json() == {"n": 4}
    path = tmp_path / "in.json"
    path.write_text('{"n": 3}')
    assert executor_cli("run", DOUBLE, "--input", f"@{path}").json() == {"n": 6}


def test_details_prints_the_execution() -> None:
    """``--details`` prints output, duration and timings."""
    data = executor_cli("run", DOUBLE, "--input", '{"n": 1}', "--details").json()
    assert data["output"] == {"n": 2}
    assert data["duration"] >= 0 and "call" in data["timings"]


@pytest.mark.parametrize(
    ("args", "status", "code"),
    [
        (["--input", "not json"], 3, "INPUT_INVALID"),
        (["--input", "[1, 2"], 3, "INPUT_INVALID"),
        (["--input", '{"m": 1}'], 6, "EXECUTION_FAILED"),
    ],
)
def test_error_exit_status_and_json(args: list[str], status: int, code: str) -> None:
    """Failures exit with their family's status and print one JSON object on stderr."""
    result = executor_cli("run", DOUBLE, *args)
    assert result.code == status
    assert result.stdout == ""
    error = result.error()
    assert error["code"] == code
    assert {"type", "message"} <= error.keys()


def test_task_error_carries_the_traceback() -> None:
    """An exception in the task is EXECUTION_FAILED (6) with its traceback in ``details``."""
    result = executor_cli("run", f"{DOUBLE}:boom", "--input", "{}")
    assert result.code == 6
    error = result.error()
    assert error["type"] == "ExecutionFailed"
    assert "ValueError: boom on purpose" in error["details"]


def test_timeout_exits_5() -> None:
    """A task overrunning --timeout exits 5 with TIMEOUT, on time."""
    started = time.monotonic()
    result = executor_cli("run", f"{DOUBLE}:sleepy", "--timeout", "0.5", "--input", "{}")
    assert (result.code, result.error()["code"]) == (5, "TIMEOUT")
    assert result.error()["timeout"] == 0.5
    assert time.monotonic() - started < 20


def test_output_that_is_not_json_exits_4() -> None:
    """A local task returning something JSON cannot hold exits 4 (OUTPUT_INVALID)."""
    result = executor_cli("run", f"{DOUBLE}:not_json", "--input", "{}")
    assert (result.code, result.error()["code"]) == (4, "OUTPUT_INVALID")


def test_import_failure_and_missing_function_exit_10(tmp_path: Path) -> None:
    """A target that cannot be imported, or lacks the function, is CONFIG_INVALID (10)."""
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('at import')\n")
    result = executor_cli("run", str(broken), "--input", "1")
    assert (result.code, result.error()["code"]) == (10, "CONFIG_INVALID")
    assert "at import" in result.error()["message"]
    result = executor_cli("run", f"{DOUBLE}:missing", "--input", "1")
    assert (result.code, result.error()["code"]) == (10, "CONFIG_INVALID")


@pytest.mark.parametrize(
    "args",
    [
        ["run", "does-not-exist.py", "--input", "1"],
        ["run", "no_colon_module", "--input", "1"],
        ["run", DOUBLE, "--memory", "1g", "--input", "1"],
        ["run", DOUBLE, "--runner", "cobol", "--input", "1"],
        ["run", DOUBLE, "--runner", "go", "--input", "1"],
        ["run", DOUBLE, "--runner", "python", "--memory", "lots", "--input", "1"],
        ["run", "--runner", "python", "--input", "1"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    """Unknown targets, commands and bad flag combinations are usage errors (2)."""
    result = executor_cli(*args)
    assert result.code == 2, result.stderr
    assert "Error" in result.stderr


def test_go_runner_explains_compiled_code() -> None:
    """``--runner go`` with a file explains that Go code is compiled into an image."""
    result = executor_cli("run", DOUBLE, "--runner", "go", "--input", "1")
    assert "compiled into the runner image" in result.stderr
    assert "--image" in result.stderr


@pytest.mark.parametrize("command", ["run", "batch"])
def test_runner_choices_are_the_ones_that_work(command: str) -> None:
    """``--help`` offers ``--runner node|python`` only; ``--runner go`` (with or without a
    TARGET) is a usage error explaining how Go runs, never a container start."""
    help_text = executor_cli(command, "--help").stdout
    assert "[node|python]" in help_text and "go" not in help_text.split("--runner", 1)[1][:40]
    result = executor_cli("run", "--runner", "go", "--input", "1")
    assert result.code == 2, result.stderr
    assert "compiled into the runner image" in result.stderr


# --- in a container ----------------------------------------------------------------------------


@pytest.mark.docker
def test_run_python_file_in_a_container() -> None:
    """``--runner python`` injects the file as /app/execute.py and runs it in a container."""
    result = executor_cli(
        "run", DOUBLE, "--runner", "python", "--label", RUN_LABEL, "--input", '{"n": 5}'
    )
    assert (result.code, result.json()) == (0, {"n": 10}), result.stderr


@pytest.mark.docker
def test_run_other_function_in_a_container() -> None:
    """``file.py:function`` works in a container too (through a one-line shim module)."""
    result = executor_cli(
        "run", f"{DOUBLE}:boom", "--runner", "python", "--label", RUN_LABEL, "--input", "{}"
    )
    assert result.code == 6
    error = result.error()
    assert error["code"] == "USER_ERROR"
    assert "boom on purpose" in error["message"]


@pytest.mark.docker
def test_run_node_module_in_a_container() -> None:
    """``--runner node`` injects an ES module as /app/execute.mjs."""
    node = str(TASKS / "double.mjs")
    result = executor_cli(
        "run", node, "--runner", "node", "--label", RUN_LABEL, "--input", '{"n": 4}'
    )
    assert (result.code, result.json()) == (0, {"n": 8}), result.stderr
    result = executor_cli(
        "run", f"{node}:triple", "--runner", "node", "--label", RUN_LABEL, "--input", '{"n": 4}'
    )
    assert (result.code, result.json()) == (0, {"n": 12}), result.stderr


@pytest.mark.docker
def test_run_image_without_target() -> None:
    """``--image`` alone runs the image's built-in task (the Go runner's echo)."""
    result = executor_cli(
        "run",
        "--image",
        "executor/runner-go:latest",
        "--label",
        RUN_LABEL,
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--no-network",
        "--input",
        '{"a": [1]}',
    )
    assert (result.code, result.json()) == (0, {"a": [1]}), result.stderr


@pytest.mark.docker
def test_container_timeout_exits_5() -> None:
    """A container call overrunning --timeout exits 5 and leaves no container."""
    result = executor_cli(
        "run",
        f"{DOUBLE}:sleep_sync",
        "--runner",
        "python",
        "--label",
        RUN_LABEL,
        "--timeout",
        "1",
        "--input",
        '{"seconds": 30}',
    )
    assert (result.code, result.error()["code"]) == (5, "TIMEOUT")


@pytest.mark.docker
def test_missing_image_exits_9() -> None:
    """An image that is not on the engine exits 9 with IMAGE_NOT_FOUND."""
    result = executor_cli("run", "--image", "executor/no-such-image:1", "--input", "1")
    assert (result.code, result.error()["code"]) == (9, "IMAGE_NOT_FOUND")


@pytest.mark.docker
def test_runner_image_comes_from_the_environment() -> None:
    """``--runner python`` runs the image ``EXECUTOR_PYTHON_IMAGE`` names, as CodeExecutor
    does (here one that is missing, so the error names it)."""
    image = "executor/no-such-runner-python:1"
    result = executor_cli(
        "run",
        DOUBLE,
        "--runner",
        "python",
        "--label",
        RUN_LABEL,
        "--input",
        "{}",
        env={"EXECUTOR_PYTHON_IMAGE": image},
    )
    assert (result.code, result.error()["code"]) == (9, "IMAGE_NOT_FOUND"), result.stderr
    assert image in result.error()["message"]


def test_unreachable_engine_exits_9() -> None:
    """With DOCKER_HOST pointing nowhere a container run exits 9 (ENGINE_UNAVAILABLE)."""
    result = executor_cli(
        "run",
        DOUBLE,
        "--runner",
        "python",
        "--input",
        "{}",
        env={"DOCKER_HOST": "tcp://127.0.0.1:1"},
        timeout=60,
    )
    assert (result.code, result.error()["code"]) == (9, "ENGINE_UNAVAILABLE")


def test_repo_is_where_we_think() -> None:
    """The helpers run the CLI from the repository root."""
    assert (REPO / "pyproject.toml").is_file()


@pytest.mark.docker
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_a_container_run(signum: int) -> None:
    """Ctrl-C (or SIGTERM) during a container run: exit 130 at once, the container removed."""
    label = f"{RUN_LABEL}-sig{int(signum)}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "executor",
            "run",
            f"{DOUBLE}:sleep_sync",
            "--runner",
            "python",
            "--label",
            label,
            "--input",
            '{"seconds": 60}',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _containers(label):
            time.sleep(0.2)
        assert _containers(label), "the container never started"
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
        assert time.monotonic() - sent < 20
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert _containers(label) == []


def _containers(label: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={label}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.split()


@pytest.mark.docker
def test_run_under_gvisor_when_registered() -> None:
    """``--runtime runsc`` runs the call under gVisor (skips where runsc is not registered)."""
    info = subprocess.run(
        ["docker", "info", "--format", "{{json .Runtimes}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if "runsc" not in info.stdout:
        pytest.skip("runsc is not registered with this engine (`make engine` installs it)")
    result = executor_cli(
        "run",
        "examples/stats.py",
        "--runner",
        "python",
        "--runtime",
        "runsc",
        "--label",
        RUN_LABEL,
        "--input",
        '{"values": [1, 2]}',
    )
    assert (result.code, result.json()) == (0, {"count": 2, "sum": 3, "mean": 1.5}), result.stderr


def test_readable_error_line_on_a_terminal() -> None:
    """With stderr on a terminal the JSON error is followed by a readable line."""
    import pty

    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "executor", "run", DOUBLE, "--input", "nope"],
            stdout=subprocess.PIPE,
            stderr=secondary,
            cwd=REPO,
            timeout=60,
            check=False,
        )
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)
    text = b"".join(chunks).decode()
    assert done.returncode == 3
    first, *rest = text.splitlines()
    assert json.loads(first)["code"] == "INPUT_INVALID"
    readable = "".join(rest)
    assert "error" in readable and "[INPUT_INVALID]" in readable
    assert "--input is not valid JSON" in readable


@pytest.mark.docker
def test_follow_prints_log_lines_as_they_arrive() -> None:
    """``--follow`` writes each of the task's log lines to stderr while it runs (the first
    well before the end), then the output on stdout as usual."""
    image = os.environ.get("EXECUTOR_PYTHON_IMAGE", "executor/runner-python:latest")
    argv = [sys.executable, "-m", "executor", "run", f"{DOUBLE}:chatty", "--image", image]
    argv += ["--label", RUN_LABEL, "--follow", "--input", '{"lines": 3, "pause": 0.5}']
    with subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stderr is not None and process.stdout is not None
        first = process.stderr.readline()
        seen_at = time.monotonic()
        rest = process.stderr.read()
        out = process.stdout.read()
        ended_at = time.monotonic()
        assert process.wait(timeout=120) == 0, rest
    assert first == "line 0\n"
    assert rest == "line 1\nline 2\n"
    assert json.loads(out) == {"lines": 3}
    assert ended_at - seen_at > 0.7, "the first line came only at the end"


def test_follow_in_process_prints_the_output() -> None:
    """``--follow`` on a local target runs it and prints the output (no live logs there)."""
    result = executor_cli("run", DOUBLE, "--follow", "--input", '{"n": 2}')
    assert (result.code, result.json()) == (0, {"n": 4}), result.stderr


@pytest.mark.parametrize("function", ["execute", "async_execute"])
def test_in_process_task_output_goes_to_stderr(function: str) -> None:
    """An in-process task's writes to stdout (print at import and in the call, a write to fd 1,
    a child process) land on stderr: stdout is exactly the one JSON line."""
    result = executor_cli("run", f"{TASKS / 'noisy.py'}:{function}", "--input", '{"n": 21}')
    assert (result.code, result.stdout) == (0, '{"n":42}\n'), result.stderr
    assert "noisy: imported" in result.stderr
    if function == "execute":
        for line in ("noisy: print", "noisy: fd 1", "noisy: child"):
            assert line in result.stderr
    else:
        assert "noisy: async print" in result.stderr


def test_usage_flag_says_when_nothing_was_measured() -> None:
    """``--usage`` prints a usage line on stderr; an in-process call has none to report."""
    result = executor_cli("run", DOUBLE, "--input", '{"n": 1}', "--usage")
    assert result.json() == {"n": 2}
    assert result.stderr.startswith("usage: not reported")


@pytest.mark.docker
def test_usage_flag_prints_a_container_calls_usage() -> None:
    """``--usage`` with ``--runner python`` prints the runner's measured CPU, memory and wall."""
    result = executor_cli("run", DOUBLE, "--runner", "python", "--input", '{"n": 1}', "--usage")
    assert result.json() == {"n": 2}, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("usage: cpu_time=") and "MiB" in line and "n/a" not in line, line
