"""The secure defaults of ContainerConfig, observed from inside the container by user code.

One probe module is injected into every container of this file (one derived image); the input
names the probe, and the probe reports what the process sees rather than what was asked for.
"""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from executor import ContainerFailed

if TYPE_CHECKING:
    from .conftest import MakeExecutor

pytestmark = pytest.mark.docker

MiB = 1024 * 1024

PROBE = r"""
import errno
import os
import socket
import time


def _err(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno))


def ids(_):
    return {"uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(), "groups": os.getgroups()}


def rootfs(_):
    out = {}
    for path in ("/app/new-file", "/etc/new-file", "/usr/local/new-file"):
        try:
            with open(path, "w") as fh:
                fh.write("x")
            out[path] = "written"
        except OSError as exc:
            out[path] = _err(exc)
    return out


def tmp(arg):
    chunk = b"x" * (256 * 1024)
    written = 0
    result = {"error": None}
    try:
        with open("/tmp/fill", "wb") as fh:
            while written < arg["limit"] * 2:
                fh.write(chunk)
                fh.flush()
                written += len(chunk)
    except OSError as exc:
        result["error"] = _err(exc)
    result["written"] = written
    os.remove("/tmp/fill")
    with open("/tmp/small", "w") as fh:
        fh.write("ok")
    with open("/tmp/small") as fh:
        result["small"] = fh.read()
    return result


def net(arg):
    out = {}
    for host in ("1.1.1.1", arg["gateway"]):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(3)
        try:
            sock.connect((host, 53))
            out[host] = "connected"
        except OSError as exc:
            out[host] = _err(exc) if exc.errno else type(exc).__name__
        finally:
            sock.close()
    try:
        socket.getaddrinfo("example.com", 80)
        out["dns"] = "resolved"
    except OSError as exc:
        out["dns"] = type(exc).__name__
    out["interfaces"] = sorted(os.listdir("/sys/class/net"))
    with open("/proc/net/dev") as fh:
        out["dev"] = sorted(line.split(":")[0].strip() for line in fh.readlines()[2:])
    return out


def forkbomb(arg):
    children = 0
    error = None
    for _ in range(arg["tries"]):
        try:
            pid = os.fork()
        except OSError as exc:
            error = _err(exc)
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
    return {"children": children, "error": error}


def status(_):
    with open("/proc/self/status") as fh:
        fields = dict(line.split(":", 1) for line in fh.read().splitlines() if ":" in line)
    return {k: fields[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                            "NoNewPrivs", "Seccomp") if k in fields}


def membomb(_):
    hold = []
    while True:
        hold.append(b"x" * (8 * 1024 * 1024))


def execute(input):
    return globals()[input["probe"]](input.get("arg"))
"""

FILES = {"/app/execute.py": PROBE}


def bridge_gateway() -> str:
    """The default bridge's gateway address as the engine reports it (172.17.0.1 usually)."""
    done = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    config: list[dict[str, Any]] = json.loads(done.stdout)
    gateway = next((c.get("Gateway") for c in config if c.get("Gateway")), None)
    return str(gateway or "172.17.0.1")


async def test_runs_as_uid_and_gid_1000(make_executor: MakeExecutor) -> None:
    """User code runs as uid 1000 and gid 1000, not root."""
    out = await make_executor(files=FILES).execute({"probe": "ids"})
    assert (out["uid"], out["euid"], out["gid"]) == (1000, 1000, 1000)


async def test_root_filesystem_is_read_only(make_executor: MakeExecutor) -> None:
    """Writing anywhere on the root filesystem (including /app) fails with EROFS."""
    out = await make_executor(files=FILES).execute({"probe": "rootfs"})
    assert out == {
        "/app/new-file": "EROFS",
        "/etc/new-file": "EROFS",
        "/usr/local/new-file": "EROFS",
    }


async def test_tmp_is_writable_and_size_limited(make_executor: MakeExecutor) -> None:
    """/tmp accepts files but writing past tmpfs_bytes fails with ENOSPC."""
    limit = 8 * MiB
    ex = make_executor(files=FILES, tmpfs_bytes=limit)
    out = await ex.execute({"probe": "tmp", "arg": {"limit": limit}})
    assert out["error"] == "ENOSPC"
    assert 0 < out["written"] <= limit
    assert out["small"] == "ok"


async def test_network_is_unreachable(make_executor: MakeExecutor) -> None:
    """No route out: connecting to 1.1.1.1 or the bridge gateway fails and only lo exists."""
    gateway = bridge_gateway()
    out = await make_executor(files=FILES).execute({"probe": "net", "arg": {"gateway": gateway}})
    assert out["1.1.1.1"] == "ENETUNREACH"
    assert out[gateway] == "ENETUNREACH"
    assert out["dns"] == "gaierror"
    assert out["interfaces"] == ["lo"]
    assert out["dev"] == ["lo"]


async def test_pids_limit_stops_a_fork_bomb(make_executor: MakeExecutor) -> None:
    """With pids_limit=32 forking stops with EAGAIN before 32 children, and the call returns."""
    ex = make_executor(files=FILES, pids_limit=32)
    out = await ex.execute({"probe": "forkbomb", "arg": {"tries": 500}})
    assert out["error"] == "EAGAIN"
    assert 0 < out["children"] < 32
    # The host is unaffected: it can still start processes.
    assert subprocess.run(["true"], check=False).returncode == 0


async def test_memory_limit_stops_a_memory_bomb(make_executor: MakeExecutor) -> None:
    """A memory bomb under memory_bytes=64 MiB is OOM-killed: ContainerFailed OOM_KILLED, 137."""
    ex = make_executor(files=FILES, memory_bytes=64 * MiB)
    with pytest.raises(ContainerFailed) as info:
        await ex.execute({"probe": "membomb"})
    assert info.value.code == "OOM_KILLED", info.value.to_dict()
    assert info.value.oom_killed is True
    assert info.value.exit_code == 137
    assert "64 MiB" in info.value.message


async def test_capabilities_are_empty(make_executor: MakeExecutor) -> None:
    """Every capability set of the user process is empty (CapEff 0, bounding set 0)."""
    out = await make_executor(files=FILES).execute({"probe": "status"})
    zero = "0000000000000000"
    assert out["CapEff"] == zero
    assert out["CapPrm"] == zero
    assert out["CapBnd"] == zero
    assert out["CapAmb"] == zero


async def test_no_new_privileges_is_set(make_executor: MakeExecutor) -> None:
    """The process runs with no_new_privs set, so setuid binaries cannot raise privileges."""
    out = await make_executor(files=FILES).execute({"probe": "status"})
    assert out["NoNewPrivs"] == "1"
