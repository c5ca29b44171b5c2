"""A Ray cluster of several nodes on this machine, for the Ray tests and ``bench/ray.py``.

Each node is a ``ray start`` of its own, in a process group of its own, with its own
environment: the head keeps this process's (the system engine), a worker node gets a
``DOCKER_HOST`` of its own (a private dockerd, ``tests/_dockerd.py``). Everything listens on
127.0.0.2 (Ray rewrites 127.0.0.1 to the machine's routable address), on ports picked free,
under a temp dir of its own, so the cluster never meets another one on this machine. Stopping
a node kills its raylet and everything it started; :meth:`destroy` stops only what this
object started (never ``ray stop``, which stops every cluster on the machine).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

IP = "127.0.0.2"
RAY = str(Path(sys.executable).with_name("ray"))
#: The environment of every node, and of this process (the driver): no usage stats, and no
#: token auth. Ray 2.60 turns token auth on for `ray start` as soon as ~/.ray/auth_token
#: exists, which any local `ray.init()` on this machine writes; a node or driver that does not
#: decide the same way is then refused by the GCS. The cluster listens on 127.0.0.2 only. No
#: gRPC fork handlers: the head's Ray Client server forks a server per ray:// driver while
#: busy with gRPC, and the child can abort in them ("Check failed: next_worker->state ==
#: KICKED"; ray-project/ray#63202), which failed test_ray_client_address one run in three.
ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "GRPC_ENABLE_FORK_SUPPORT": "false",
}


def free_port() -> int:
    """A TCP port nobody listens on right now (on the cluster's address)."""
    with socket.socket() as s:
        s.bind((IP, 0))
        return int(s.getsockname()[1])


@functools.cache
def _has_flag(flag: str) -> bool:
    """Whether this Ray's ``ray start`` knows a flag (older versions lack some)."""
    done = subprocess.run([RAY, "start", "--help"], capture_output=True, text=True, check=False)
    return flag in done.stdout


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process on the machine."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _group(pgid: int) -> list[int]:
    """Pids of the processes in a process group."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Node:
    """One ``ray start``: its name, process group and environment."""

    name: str
    pgid: int
    env: dict[str, str] = field(repr=False)

    def pids(self) -> list[int]:
        """The node's processes: its group and every descendant (workers set their own group)."""
        tree = _children()
        todo = _group(self.pgid)
        seen: list[int] = []
        while todo:
            pid = todo.pop()
            if pid not in seen:
                seen.append(pid)
                todo.extend(tree.get(pid, ()))
        return seen

    def raylet(self) -> int | None:
        """The node's raylet pid, or None once it is gone."""
        for pid in _group(self.pgid):
            if "raylet/raylet " in _cmdline(pid):
                return pid
        return None


class LocalRayCluster:
    """A head node and worker nodes, each ``ray start``-ed in its own process group."""

    def __init__(self, root: Path | None = None) -> None:
        # Short: Ray puts unix sockets under it (a path is limited to ~108 bytes).
        self.root = root or Path(tempfile.mkdtemp(prefix="exr-", dir="/tmp"))
        self.port = free_port()
        self.address = f"{IP}:{self.port}"
        #: ``ray://`` address of the head's Ray Client server (when ray[client] is installed).
        self.client_address: str | None = None
        self.nodes: dict[str, Node] = {}
        self.stopped: list[Node] = []
        self.log = self.root / "ray-start.log"
        self._slots = random.sample(range(32), 32)
        # This process is the driver: its ray.init() must decide auth as the nodes do.
        os.environ.update(ENV)

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = {**os.environ, **ENV, **(extra or {})}
        return {k: v for k, v in env.items() if v}

    def _start(self, name: str, args: list[str], env: dict[str, str], timeout: float) -> Node:
        ports = [
            ("--node-manager-port", free_port()),
            ("--object-manager-port", free_port()),
            ("--dashboard-agent-listen-port", free_port()),
            ("--dashboard-agent-grpc-port", free_port()),
            ("--runtime-env-agent-port", free_port()),
            ("--metrics-export-port", free_port()),
        ]
        # Workers listen on ports from a range: one below the ephemeral range (outgoing
        # connections never take it) and above the Ray Client's per-client servers (23000
        # up), its own per node, at random per cluster.
        worker_ports = 24000 + 250 * self._slots.pop()
        cmd = [
            RAY,
            "start",
            *args,
            "--node-ip-address",
            IP,
            "--num-cpus",
            "2",
            "--object-store-memory",
            str(100 * 1024 * 1024),
            *(["--include-log-monitor", "false"] if _has_flag("--include-log-monitor") else []),
            "--disable-usage-stats",
            # A worker's port is taken from this range; the start is random per cluster.
            "--min-worker-port",
            str(worker_ports),
            "--max-worker-port",
            str(worker_ports + 249),
        ]
        for flag, port in ports:
            cmd += [flag, str(port)]
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        node = Node(name, proc.pid, env)
        self.nodes[name] = node
        if code != 0:
            raise RuntimeError(
                f"ray start ({name}) failed with {code}: {self.log.read_text()[-3000:]}"
            )
        return node

    def start_head(self, env: dict[str, str] | None = None, timeout: float = 90.0) -> Node:
        """Start the head node (GCS + raylet), with this process's environment plus ``env``."""
        args = [
            "--head",
            "--port",
            str(self.port),
            "--temp-dir",
            str(self.root),
            "--include-dashboard",
            "false",
            "--dashboard-port",
            str(free_port()),
        ]
        if importlib.util.find_spec("grpc") is not None:  # ray[client]: serve ray:// too
            client_port = free_port()
            args += ["--ray-client-server-port", str(client_port)]
            self.client_address = f"ray://{IP}:{client_port}"
        return self._start("head", args, self._env(env), timeout)

    def start_worker(
        self, name: str, env: dict[str, str] | None = None, timeout: float = 90.0
    ) -> Node:
        """Start a worker node joining the head, with ``env`` on top of this process's."""
        return self._start(name, ["--address", self.address], self._env(env), timeout)

    def stop_node(self, name: str) -> None:
        """Kill a node as a crash would: its raylet and every process it started (SIGKILL)."""
        node = self.nodes.pop(name)
        for pid in node.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.stopped.append(node)

    def client_logs(self, tail: int = 3000) -> str:
        """The end of each Ray Client server's log (the proxy's and each per-client server's):
        a ``ray://`` driver sees only "Starting Ray client server failed", the cause is here."""
        # session_latest is a link to the session's own directory: each log once.
        found = sorted({p.resolve() for p in self.root.glob("session_*/logs/ray_client_server*")})
        return "".join(f"\n--- {p.name}:\n{p.read_text(errors='replace')[-tail:]}" for p in found)

    def alive(self, name: str) -> bool:
        """Whether the node's raylet still runs."""
        node = self.nodes.get(name)
        return node is not None and node.raylet() is not None

    def destroy(self) -> None:
        """Stop every node this object started (workers first), then delete the temp dir."""
        for name in [n for n in self.nodes if n != "head"] + ["head"]:
            if name in self.nodes:
                self.stop_node(name)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(n.pids() for n in self.stopped):
            time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)
