"""Files back: ``ContainerConfig(collect=...)`` returns what the task left, in every mode."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from executor import CollectTooLarge, ConfigError, ContainerConfig, ExecutionFailed

from .conftest import GO_IMAGE, NODE_IMAGE, PYTHON_IMAGE

if TYPE_CHECKING:
    from .conftest import MakeExecutor

pytestmark = pytest.mark.docker

WRITER = """
import os

def execute(input):
    found = sorted(os.listdir("/tmp/out"))
    for name, text in input.get("write", {}).items():
        path = os.path.join("/tmp/out", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(text.encode("latin-1"))
    if input.get("link"):
        os.symlink("/etc/passwd", "/tmp/out/link")
    return {"found": found}
"""
NODE_WRITER = """
import fs from "node:fs";
import path from "node:path";

export function executeFunction(input) {
  const found = fs.readdirSync("/tmp/out").sort();
  for (const [name, text] of Object.entries(input.write ?? {})) {
    const file = path.join("/tmp/out", name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, Buffer.from(text, "latin1"));
  }
  return { found };
}
"""
MODES: list[dict[str, Any]] = [
    {},
    {"mode": "pool", "containers": 1},
    {"mode": "fork", "containers": 1},
    {"mode": "reuse", "containers": 0},
]


@pytest.mark.parametrize("mode", MODES, ids=["fresh", "pool", "fork", "reuse"])
async def test_files_back_in_every_mode(make_executor: MakeExecutor, mode: dict[str, Any]) -> None:
    """Each call gets exactly the files it left (binary safe, nested, no symlink), never an
    earlier call's: the runner empties the directory first, in every mode."""
    ex = make_executor(files={"/app/execute.py": WRITER}, collect="/tmp/out", **mode)
    async with ex:
        first = await ex.run({"write": {"a.txt": "hello", "sub/b.bin": "\x00\xff"}, "link": True})
        assert first.output == {"found": []}
        assert first.files == {"a.txt": b"hello", "sub/b.bin": b"\x00\xff"}
        second = await ex.run({"write": {"c.txt": "again"}})
        assert second.output == {"found": []}
        assert second.files == {"c.txt": b"again"}
        assert (await ex.run({})).files == {}


@pytest.mark.parametrize("mode", MODES, ids=["fresh", "pool", "fork", "reuse"])
async def test_collect_caps_are_errors(make_executor: MakeExecutor, mode: dict[str, Any]) -> None:
    """More bytes or files than allowed is CollectTooLarge (code COLLECT_TOO_LARGE), not a cut
    list; the next call is served normally."""
    ex = make_executor(
        files={"/app/execute.py": WRITER},
        collect="/tmp/out",
        max_collect_bytes=64,
        max_collect_files=2,
        **mode,
    )
    async with ex:
        with pytest.raises(CollectTooLarge) as info:
            await ex.run({"write": {"big": "x" * 100}})
        assert info.value.code == "COLLECT_TOO_LARGE"
        assert (info.value.max_bytes, info.value.max_files, info.value.path) == (64, 2, "/tmp/out")
        with pytest.raises(CollectTooLarge):
            await ex.run({"write": {"a": "", "b": "", "c": ""}})
        assert (await ex.run({"write": {"ok": "fine"}})).files == {"ok": b"fine"}


async def test_large_collect_passes_a_small_output_limit(make_executor: MakeExecutor) -> None:
    """max_output_bytes bounds the output, not the files: 3 MiB back with a 1 KiB output
    limit, in fork mode too (the parent's limit includes the files' allowance)."""
    for mode in ({}, {"mode": "fork", "containers": 1}):
        ex = make_executor(
            files={"/app/execute.py": WRITER},
            collect="/tmp/out",
            max_output_bytes=1024,
            tmpfs_bytes=32 * 1024 * 1024,
            **mode,
        )
        async with ex:
            execution = await ex.run({"write": {"big.bin": "\xfe" * (3 * 1024 * 1024)}})
        assert execution.files["big.bin"] == b"\xfe" * (3 * 1024 * 1024)


async def test_node_and_go_runners_collect(make_executor: MakeExecutor) -> None:
    """The Node runner collects too; the Go echo image answers with an empty set of files."""
    node = make_executor(NODE_IMAGE, files={"/app/execute.mjs": NODE_WRITER}, collect="/tmp/out")
    execution = await node.run({"write": {"n/x.txt": "node"}})
    assert execution.files == {"n/x.txt": b"node"}
    go = make_executor(GO_IMAGE, collect="/tmp/out")
    assert (await go.run({"echo": 1})).files == {}


async def test_failed_call_and_unreadable_file(make_executor: MakeExecutor) -> None:
    """A task that raises returns no files (USER_ERROR); a file it made unreadable is
    COLLECT_FAILED, an ExecutionFailed."""
    task = (
        "import os\n"
        "def execute(input):\n"
        "    open('/tmp/out/secret', 'w').close()\n"
        "    os.chmod('/tmp/out/secret', 0)\n"
        "    if input == 'raise':\n"
        "        raise ValueError('no')\n"
        "    return 1\n"
    )
    ex = make_executor(files={"/app/execute.py": task}, collect="/tmp/out")
    with pytest.raises(ExecutionFailed) as info:
        await ex.run("raise")
    assert info.value.code == "USER_ERROR"
    with pytest.raises(ExecutionFailed) as info:
        await ex.run("ok")
    assert info.value.code == "COLLECT_FAILED"
    assert "/tmp/out" in info.value.message


def test_collect_must_be_inside_a_writable_mount() -> None:
    """collect is checked at construction: inside /tmp, /dev/shm or a ':rw' mount."""
    ContainerConfig(PYTHON_IMAGE, collect="/tmp/out/deeper")
    ContainerConfig(PYTHON_IMAGE, collect="/data/out", mounts=["/srv/x:/data:rw"])
    for bad in ("/tmp", "/app/out", "tmp/out", "/tmp/../etc"):
        with pytest.raises(ConfigError):
            ContainerConfig(PYTHON_IMAGE, collect=bad)
    with pytest.raises(ConfigError):
        ContainerConfig(PYTHON_IMAGE, collect="/data/out", mounts=["/srv/x:/data"])
