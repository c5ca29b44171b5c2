"""``executor batch``: one result line per input, bad lines recorded, exit status, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import REPO, RUN_LABEL, TASKS, executor_cli, leftover_containers

if TYPE_CHECKING:
    from pathlib import Path

DOUBLE = str(TASKS / "double.py")


def _write_inputs(path: Path, count: int) -> tuple[set[int], set[int]]:
    """``count`` lines: mostly ``{"n": i}``; every 100th+7 is not JSON, every 100th+9 lacks n."""
    bad_json: set[int] = set()
    failing: set[int] = set()
    with path.open("w") as fh:
        for i in range(count):
            if i % 100 == 7:
                fh.write("this is not json\n")
                bad_json.add(i)
            elif i % 100 == 9:
                fh.write('{"m": 1}\n')
                failing.add(i)
            else:
                fh.write(json.dumps({"n": i}) + "\n")
    return bad_json, failing


def _read_results(text: str) -> dict[int, dict[str, Any]]:
    lines = [json.loads(line) for line in text.splitlines()]
    by_index = {line["index"]: line for line in lines}
    assert len(by_index) == len(lines), "an index appeared twice"
    return by_index


def test_batch_of_1000_lines(tmp_path: Path) -> None:
    """Every line gets exactly one result line with its index; failures are error lines."""
    inputs = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    bad_json, failing = _write_inputs(inputs, 1000)
    result = executor_cli(
        "batch", DOUBLE, "--inputs", str(inputs), "--output", str(out), "--concurrency", "16"
    )
    assert result.code == 1, result.stderr  # some lines failed
    results = _read_results(out.read_text())
    assert sorted(results) == list(range(1000))
    for i, line in results.items():
        if i in bad_json:
            assert line["ok"] is False
            assert line["error"]["code"] == "INPUT_INVALID"
            assert f"line {i + 1}" in line["error"]["message"]
        elif i in failing:
            assert line["ok"] is False
            assert line["error"]["code"] == "EXECUTION_FAILED"
        else:
            assert line == {"index": i, "ok": True, "output": {"n": 2 * i}}
    assert "1000 finished, 980 ok, 20 failed" in result.stderr
    assert "\x1b[" not in result.stderr  # no progress bar when stderr is not a terminal


def test_batch_all_ok_exits_0_and_writes_stdout() -> None:
    """Without --output the lines go to stdout; all succeeded → exit 0."""
    lines = "".join(json.dumps({"n": i}) + "\n" for i in range(50))
    result = executor_cli("batch", DOUBLE, "--inputs", "-", input=lines)
    assert result.code == 0, result.stderr
    results = _read_results(result.stdout)
    assert {i: r["output"]["n"] for i, r in results.items()} == {i: 2 * i for i in range(50)}


def test_batch_in_process_task_output_goes_to_stderr() -> None:
    """In a batch of an in-process task, its prints (any thread, fd 1, a child process) land
    on stderr: stdout holds only the result lines."""
    lines = "".join(json.dumps({"n": i}) + "\n" for i in range(5))
    result = executor_cli("batch", str(TASKS / "noisy.py"), "--inputs", "-", input=lines)
    assert result.code == 0, result.stderr
    assert {i: r["output"]["n"] for i, r in _read_results(result.stdout).items()} == {
        i: 2 * i for i in range(5)
    }
    for line in ("noisy: imported", "noisy: print", "noisy: fd 1", "noisy: child"):
        assert line in result.stderr


def test_blank_and_trailing_lines_are_recorded(tmp_path: Path) -> None:
    """A blank line in the middle is an error line, not silently skipped."""
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"n": 1}\n\n{"n": 2}')  # no final newline
    result = executor_cli("batch", DOUBLE, "--inputs", str(inputs))
    results = _read_results(result.stdout)
    assert sorted(results) == [0, 1, 2]
    assert results[1]["error"]["code"] == "INPUT_INVALID"
    assert "empty line" in results[1]["error"]["message"]
    assert results[2]["output"] == {"n": 4}
    assert result.code == 1


def test_progress_bar_when_forced(tmp_path: Path) -> None:
    """``--progress`` draws the bar (rate and ETA) on stderr even off a terminal."""
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(20)))
    result = executor_cli("batch", DOUBLE, "--inputs", str(inputs), "--progress")
    assert result.code == 0
    assert "20/20" in result.stderr
    assert "/s" in result.stderr and "ETA" in result.stderr


def test_missing_inputs_file_is_a_usage_error() -> None:
    """A --inputs file that does not exist exits 2."""
    result = executor_cli("batch", DOUBLE, "--inputs", "/nonexistent/in.jsonl")
    assert result.code == 2


def _wait_for_containers(count: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if len(leftover_containers()) >= count:
            return
        time.sleep(0.2)
    pytest.fail(f"fewer than {count} containers started in time")


@pytest.mark.docker
def test_batch_in_containers(tmp_path: Path) -> None:
    """A container batch (reusing two workers) returns the same lines as a local one."""
    inputs = tmp_path / "in.jsonl"
    bad_json, failing = _write_inputs(inputs, 200)
    result = executor_cli(
        "batch",
        DOUBLE,
        "--runner",
        "python",
        "--mode",
        "reuse",
        "--containers",
        "2",
        "--label",
        RUN_LABEL,
        "--inputs",
        str(inputs),
        "--concurrency",
        "2",
        timeout=240,
    )
    assert result.code == 1, result.stderr
    results = _read_results(result.stdout)
    assert sorted(results) == list(range(200))
    assert {i for i, r in results.items() if not r["ok"]} == bad_json | failing
    assert {r["error"]["code"] for i, r in results.items() if i in failing} == {"USER_ERROR"}


@pytest.mark.docker
def test_batch_missing_image_fails_once() -> None:
    """A missing image fails before any line runs: exit 9, one JSON error, no lines."""
    result = executor_cli(
        "batch", "--image", "executor/no-such-image:1", "--inputs", "-", input="1\n2\n"
    )
    assert (result.code, result.error()["code"]) == (9, "IMAGE_NOT_FOUND")
    assert result.stdout == ""


@pytest.mark.docker
def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    """SIGINT mid-batch: exit 130, the count finished is reported, no container remains."""
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"seconds": 0}\n' * 4 + '{"seconds": 60}\n' * 20)
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "executor",
            "batch",
            f"{DOUBLE}:sleep_sync",
            "--runner",
            "python",
            "--label",
            RUN_LABEL,
            "--inputs",
            str(inputs),
            "--output",
            str(out),
            "--concurrency",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
    )
    try:
        _wait_for_containers(3, time.monotonic() + 90)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(out.read_text().splitlines()) < 4:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted; 4 finished (0 failed)" in stderr
    assert len(out.read_text().splitlines()) == 4
    assert leftover_containers() == []
