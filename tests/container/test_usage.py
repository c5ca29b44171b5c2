"""Execution.usage of plain (non-code) calls on every runner, in every mode.

test_judge.py (test_every_container_call_reports_usage) pins the Python runner's numbers
against the task's own process_time too.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import pytest

from tests._gorunner import build_go_runner
from tests.container.test_runtime import require_runsc

from .conftest import GO_IMAGE, NODE_IMAGE, PYTHON_IMAGE, MakeExecutor

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.docker

MiB = 1024 * 1024
MODES: dict[str, dict[str, Any]] = {
    "fresh": {},
    "reuse": {"mode": "reuse", "containers": 1},
    "fork": {"mode": "fork", "containers": 1},
}

# Burns input.seconds of its own CPU, then (with input.mib) touches that many MiB (Python
# and Go: and give them back to the kernel before they return).
PYTHON_BURN = """
import time

def execute(input):
    start = time.process_time()
    while time.process_time() - start < input["seconds"]:
        pass
    block = bytearray(input["mib"] << 20)
    block[::4096] = b"x" * len(block[::4096])
    return {"cpu": time.process_time() - start, "touched": len(block)}
"""

NODE_BURN = """
export function executeFunction(input) {
  const start = process.cpuUsage();
  const used = () => { const d = process.cpuUsage(start); return (d.user + d.system) / 1e6; };
  let spins = 0;
  while (used() < input.seconds) spins++;
  const block = input.mib ? Buffer.alloc(input.mib * 1048576, 1) : null;
  return { cpu: used(), touched: block ? block.length : 0 };
}
"""

GO_BURN = """package function

import (
\t"encoding/json"
\t"runtime/debug"
\t"syscall"
)

var keep []byte

func cpu() float64 {
\tvar r syscall.Rusage
\t_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
\treturn float64(r.Utime.Nano()+r.Stime.Nano()) / 1e9
}

func Execute(input json.RawMessage) (any, error) {
\tvar in struct {
\t\tSeconds float64 `json:"seconds"`
\t\tMiB     int     `json:"mib"`
\t}
\tif err := json.Unmarshal(input, &in); err != nil {
\t\treturn nil, err
\t}
\tstart := cpu()
\tfor cpu()-start < in.Seconds {
\t}
\tkeep = make([]byte, in.MiB<<20)
\tfor i := 0; i < len(keep); i += 4096 {
\t\tkeep[i] = 1
\t}
\tused := cpu() - start
\tkeep = nil
\tdebug.FreeOSMemory() // the next call starts small again
\treturn map[string]any{"cpu": used, "touched": in.MiB << 20}, nil
}
"""


@pytest.fixture(scope="module")
def go_burn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go runner built with GO_BURN as its function (static; mounted over the image's)."""
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain on PATH (Debian: apt-get install golang-go)")
    work = tmp_path_factory.mktemp("go-burn")
    (work / "function").mkdir()
    (work / "function" / "execute.go").write_text(GO_BURN)
    out = build_go_runner(work / "function", work / "executor-runner")
    work.chmod(0o755)
    return out


def burner(lang: str, make_executor: MakeExecutor, go_burn: Path | None, **config: Any) -> Any:
    if lang == "python":
        return make_executor(PYTHON_IMAGE, files={"/app/execute.py": PYTHON_BURN}, **config)
    if lang == "node":
        return make_executor(NODE_IMAGE, files={"/app/execute.mjs": NODE_BURN}, **config)
    assert go_burn is not None
    mount = f"{go_burn}:/usr/local/bin/executor-runner:ro"
    return make_executor(GO_IMAGE, mounts=[mount], **config)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("lang", ["python", "node", "go"])
async def test_every_runner_reports_usage(
    make_executor: MakeExecutor, request: pytest.FixtureRequest, lang: str, mode: str
) -> None:
    """A Python, Node or Go call reports its CPU time (within 20% of what the task measured itself),
    a peak resident set that grows by a big allocation, and a wall time, in every mode."""
    go_burn = request.getfixturevalue("go_burn") if lang == "go" else None
    ex = burner(lang, make_executor, go_burn, memory_bytes=512 * MiB, **MODES[mode])
    small = await ex.run({"seconds": 0.2, "mib": 0})
    big = await ex.run({"seconds": 0.2, "mib": 200})
    for result in (small, big):
        usage = result.usage
        assert usage is not None and usage.cpu_time is not None, result
        assert usage.cpu_time == pytest.approx(result.output["cpu"], rel=0.2), usage
        assert usage.wall_time is not None and usage.wall_time >= usage.cpu_time * 0.8, usage
        assert usage.peak_memory is not None, usage
    assert small.usage is not None and big.usage is not None
    assert big.usage.peak_memory is not None and small.usage.peak_memory is not None
    assert big.usage.peak_memory >= 200 * MiB
    assert small.usage.peak_memory < 200 * MiB
    if lang != "node":  # it gave the memory back: a later call's peak is its own, in every mode
        after = await ex.run({"seconds": 0.0, "mib": 0})
        assert after.usage is not None and after.usage.peak_memory is not None
        assert after.usage.peak_memory < 200 * MiB, after.usage


@pytest.mark.parametrize("lang", ["python", "node", "go"])
async def test_serve_mode_under_gvisor_reports_no_peak(
    make_executor: MakeExecutor, request: pytest.FixtureRequest, lang: str
) -> None:
    """Under gVisor a serve-mode runner cannot reset the kernel's high-water mark, so its
    calls report peak_memory None (never the process's lifetime peak) with the CPU time."""
    require_runsc()
    go_burn = request.getfixturevalue("go_burn") if lang == "go" else None
    ex = burner(lang, make_executor, go_burn, runtime="runsc", pids_limit=512, **MODES["reuse"])
    for _ in range(2):
        result = await ex.run({"seconds": 0.1, "mib": 0})
        usage = result.usage
        assert usage is not None and usage.peak_memory is None, usage
        assert usage.cpu_time is not None and usage.cpu_time > 0.05, usage
