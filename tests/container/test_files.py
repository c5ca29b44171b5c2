"""User code placed into the container with ``files``, for each runner image."""

from __future__ import annotations

import subprocess
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from executor import ExecutionFailed
from executor.container.images import files_digest

from .conftest import GO_IMAGE, NODE_IMAGE, PYTHON_IMAGE

if TYPE_CHECKING:
    from .conftest import MakeExecutor

pytestmark = pytest.mark.docker

PYTHON_SRC = """
import helper


def execute(input):
    with open("/app/data/table.bin", "rb") as fh:
        data = fh.read()
    return {"doubled": helper.double(input["n"]), "data": list(data), "lang": "python"}
"""
PYTHON_HELPER = "def double(n):\n    return 2 * n\n"

NODE_SRC = """
import { readFileSync } from "node:fs";

export async function executeFunction(input) {
  const data = readFileSync("/app/data/table.bin");
  return { doubled: 2 * input.n, data: [...data], lang: "node", version: process.versions.node };
}
"""


async def test_python_user_code_and_sibling_files(make_executor: MakeExecutor) -> None:
    """files places /app/execute.py, a module it imports and a binary data file."""
    ex = make_executor(
        files={
            "/app/execute.py": PYTHON_SRC,
            "/app/helper.py": PYTHON_HELPER,
            "/app/data/table.bin": b"\x00\x01\xff",
        }
    )
    out = await ex.execute({"n": 21})
    assert out == {"doubled": 42, "data": [0, 1, 255], "lang": "python"}


async def test_node_user_code(make_executor: MakeExecutor) -> None:
    """files places /app/execute.mjs and the Node runner calls its exported executeFunction."""
    ex = make_executor(
        NODE_IMAGE,
        files={"/app/execute.mjs": NODE_SRC, "/app/data/table.bin": b"\x07\x08"},
    )
    out = await ex.execute({"n": 4})
    assert out["doubled"] == 8
    assert out["data"] == [7, 8]
    assert out["lang"] == "node"
    assert out["version"]


async def test_go_image_default_echo(make_executor: MakeExecutor) -> None:
    """The Go runner image answers with its built-in echo function."""
    value = {"nested": {"list": [1, 2.5, "three", None, True]}, "unicode": "héllo ✓"}
    assert await make_executor(GO_IMAGE).execute(value) == value


@pytest.mark.parametrize(
    ("lang", "where", "expected"),
    [
        ("python", "/app/main.py", "/app/execute.py"),
        ("node", "/app/main.mjs", "/app/execute.mjs"),
        ("node", "/srv/task.js", "/app/execute.js"),
    ],
)
async def test_a_task_in_the_wrong_place_is_no_task_naming_both_paths(
    make_executor: MakeExecutor, lang: str, where: str, expected: str
) -> None:
    """A stock image has no task of its own: a module put elsewhere by files= is NO_TASK whose
    message names the paths the runner looked at and where the files put it, never an echo."""
    source = {
        "python": "def execute(input):\n    return 'mine'\n",
        "node": "export function executeFunction() { return 'mine'; }\n",
    }[lang]
    ex = make_executor(PYTHON_IMAGE if lang == "python" else NODE_IMAGE, files={where: source})
    with pytest.raises(ExecutionFailed) as info:
        await ex.execute({"n": 1})
    message = info.value.message
    assert info.value.code == "NO_TASK", message
    assert expected.rpartition(".")[0] in message and where in message, message
    assert "files=" in message and "EXECUTOR_MODULE" in message, message


@pytest.mark.parametrize("lang", ["python", "node"])
async def test_a_stock_image_without_a_task_is_no_task(
    make_executor: MakeExecutor, lang: str
) -> None:
    """With nothing given, a stock runner image answers NO_TASK naming the files= key to use,
    instead of echoing the input back."""
    ex = make_executor(PYTHON_IMAGE if lang == "python" else NODE_IMAGE)
    with pytest.raises(ExecutionFailed) as info:
        await ex.execute({"n": 1})
    assert info.value.code == "NO_TASK"
    key = "/app/execute.py" if lang == "python" else "/app/execute.mjs"
    assert f"files={{'{key}'" in info.value.message, info.value.message


async def test_changed_files_are_seen_by_a_new_executor(make_executor: MakeExecutor) -> None:
    """Two executors with different files for the same path each run their own code."""
    first = make_executor(files={"/app/execute.py": "def execute(i):\n    return 'first'\n"})
    second = make_executor(files={"/app/execute.py": "def execute(i):\n    return 'second'\n"})
    assert await first.execute(None) == "first"
    assert await second.execute(None) == "second"
    assert await first.execute(None) == "first"


async def test_node_user_error_and_missing_function(make_executor: MakeExecutor) -> None:
    """Node code that throws is USER_ERROR with its stack; no executeFunction is NO_EXECUTE."""
    throwing = "export function executeFunction(input) { throw new RangeError(`bad ${input}`); }\n"
    with pytest.raises(ExecutionFailed) as info:
        await make_executor(NODE_IMAGE, files={"/app/execute.mjs": throwing}).execute(7)
    assert info.value.code == "USER_ERROR"
    assert "RangeError: bad 7" in info.value.message
    assert info.value.details is not None
    assert "/app/execute.mjs" in info.value.details
    missing = "export function somethingElse() { return 1; }\n"
    with pytest.raises(ExecutionFailed) as info:
        await make_executor(NODE_IMAGE, files={"/app/execute.mjs": missing}).execute(7)
    assert info.value.code == "NO_EXECUTE"


@pytest.mark.parametrize(
    "mode",
    [
        {},
        {"mode": "pool", "containers": 2, "prewarm": True},
        {"mode": "fork", "containers": 2, "prewarm": True, "max_uses": 2},
        {"mode": "reuse", "containers": 2, "prewarm": True, "max_uses": 2},
    ],
    ids=["fresh", "pool", "fork", "reuse"],
)
async def test_a_derived_image_removed_while_the_executor_runs_is_derived_again(
    make_executor: MakeExecutor, mode: dict[str, Any]
) -> None:
    """The derived image of ``files`` removed by hand (a cleanup of old ones) while an
    executor uses it: its next calls derive it again instead of failing IMAGE_NOT_FOUND."""
    source = f"# {uuid.uuid4().hex}\ndef execute(input):\n    return {{'n': input['n'] + 1}}\n"
    ex = make_executor(files={"/app/execute.py": source}, **mode)
    assert await ex.execute({"n": 0}) == {"n": 1}
    base = docker("image", "inspect", "-f", "{{.Id}}", PYTHON_IMAGE).strip()
    tag = f"executor-files/{files_digest(base, {'/app/execute.py': source.encode()})}:latest"
    # Untagged while idle containers use it, as Docker's `image rm -f` does (Podman's also
    # removes those containers: tests/container/test_failures.py has a container removed
    # mid-call); the second tag keeps the image itself, so only the name goes.
    docker("image", "tag", tag, f"{tag[: -len(':latest')]}:kept")
    try:
        docker("image", "rm", tag)
        assert [await ex.execute({"n": n}) for n in range(1, 7)] == [
            {"n": n + 1} for n in range(1, 7)
        ]
        assert docker("image", "ls", "-q", tag).strip(), "the image was derived again"
    finally:
        docker("image", "rm", f"{tag[: -len(':latest')]}:kept")


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout
