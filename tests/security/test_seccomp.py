"""The library's seccomp profile against hostile code, under runc and gVisor, in every mode.

Each attack in :func:`hostile.syscalls` runs in a child process of the task and reports "ok" or
the errno that stopped it. Under runc (Docker or Podman) the profile refuses every one of them
with EPERM, and ``clone3`` with ENOSYS (libc then falls back to ``clone``, whose namespace flags
the profile refuses). Under gVisor the calls reach gVisor's own kernel, never the host's, and
runsc (registered by ``make engine`` with ``--oci-seccomp``) applies the profile there too: the
same refusals, but for the few that gVisor's kernel answers first. The outcomes are tabulated in
docs/SECURITY.md.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from executor import CodeExecutor, CodeRun, SessionPool
from executor.container.config import _default_profile
from tests.container._support import case, containers
from tests.container.conftest import PYTHON_IMAGE, config

if TYPE_CHECKING:
    from pathlib import Path

    from .conftest import Sandbox

pytestmark = pytest.mark.docker

#: What the profile answers under runc: EPERM for all but these.
REFUSED_OTHERWISE = {"clone3_newuser": "ENOSYS", "personality_query": "ok", "subprocess": 0}
#: What gVisor's kernel answers before the profile is asked (refused all the same, or harmless).
GVISOR_ANSWERS = {"personality_query": "EINVAL", "setns_mnt": "ENOENT"}

MODES: dict[str, dict[str, Any]] = {
    "fresh": {},
    "pool": {"mode": "pool", "containers": 1},
    "reuse": {"mode": "reuse", "containers": 1},
    "fork": {"mode": "fork", "containers": 1},
}


@pytest.mark.parametrize("mode", list(MODES))
async def test_the_profile_refuses_every_risky_system_call(
    sandbox: Sandbox, runtime: str | None, mode: str
) -> None:
    """io_uring, user namespaces, setns, bpf, keyrings, ptrace, ... are refused in every mode."""
    ex = sandbox(timeout=60, **MODES[mode])
    out = (await ex.run({"do": "syscalls"})).output
    if runtime == "runsc":
        expected = {n: GVISOR_ANSWERS.get(n, REFUSED_OTHERWISE.get(n, "EPERM")) for n in out}
        assert out == expected, f"{out}: is runsc registered with --oci-seccomp (make engine)?"
        return
    if mode == "fork":
        # The fork-mode runner (pid 1) is not dumpable: its /proc/1/ns files do not even open.
        for kind in ("user", "mnt", "pid", "net"):
            assert out.pop(f"setns_{kind}") in ("EACCES", "EPERM")
    expected = {name: REFUSED_OTHERWISE.get(name, "EPERM") for name in out}
    assert out == expected


async def test_engine_keeps_the_engines_own_profile(sandbox: Sandbox, runtime: str | None) -> None:
    """seccomp='engine' sends no profile: the engine's default allows ptrace of a sibling."""
    if runtime == "runsc":
        pytest.skip("gVisor answers ptrace itself, whatever the profile")
    out = (await sandbox(seccomp="engine", timeout=60).run({"do": "syscalls"})).output
    assert out["ptrace_sibling"] == "ok"
    # What else it allows depends on the engine: Docker 20.10 lets io_uring through, Podman 4.3
    # clone3 with CLONE_NEWUSER (docs/SECURITY.md).
    print(f"seccomp='engine': {out}")


async def test_a_profile_path_is_applied(
    sandbox: Sandbox, runtime: str | None, tmp_path: Path
) -> None:
    """A user's profile file replaces the library's: here the default plus any personality."""
    if runtime == "runsc":
        pytest.skip(
            "a user's profile is sent as it is, and under gVisor its clone3 rule's ENOSYS "
            "becomes EPERM, on which no thread can start (docs/SECURITY.md): the library's "
            "own profile leaves clone3 to gVisor's kernel instead"
        )
    profile = json.loads(_default_profile())
    profile["syscalls"].append({"names": ["personality"], "action": "SCMP_ACT_ALLOW"})
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    out = (await sandbox(seccomp=str(path), timeout=60).run({"do": "syscalls"})).output
    assert out["personality_no_aslr"] == "ok"
    assert out["io_uring_read"] == "EPERM"


IO_URING_PROBE = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
fd = libc.syscall(425, 4, params)  # the buffer passes as a pointer (an int is truncated)
print("ok" if fd >= 0 else errno.errorcode[ctypes.get_errno()])
"""


async def test_code_executor_programs_run_under_the_profile(runtime: str | None) -> None:
    """A CodeExecutor program (a child of the code runner) gets the same profile."""
    async with CodeExecutor("python", config(PYTHON_IMAGE, runtime=runtime)) as ex:
        result = (await ex.run(CodeRun(code=IO_URING_PROBE))).output
    assert result.stdout.strip() == "EPERM", result


async def test_session_cells_run_under_the_profile(runtime: str | None) -> None:
    """A session cell (code in the session server's interpreter) gets the same profile."""
    labels = case()
    try:
        # A pool of size 0: no spare (a bare Session's implicit pool keeps one) to tell apart.
        cfg = config(PYTHON_IMAGE, runtime=runtime, labels=labels)
        async with SessionPool("python", cfg, size=0) as pool, pool.session() as s:
            cell = await s.run(IO_URING_PROBE)
    finally:
        assert not containers(labels), "the session's container was left behind"
    assert (cell.error, cell.stdout.strip()) == (None, "EPERM"), cell
