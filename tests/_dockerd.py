"""A private Docker engine for tests that stop, start or compare engines.

The system engine serves every other test; a test that needs to stop an engine mid-call, or a
second engine for load spreading, starts its own ``dockerd`` on its own socket, data root,
exec root and pid file (no bridge: containers run with network none). Images are copied in
from the system engine with ``docker save | docker load``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path


class PrivateDockerd:
    """One extra dockerd process; ``url`` is its ``unix://`` address."""

    def __init__(self, root: Path | None = None) -> None:
        # Short paths: unix socket paths are limited to ~108 bytes.
        self.root = root or Path(tempfile.mkdtemp(prefix="exd-", dir="/tmp"))
        self.socket = self.root / "d.sock"
        self.url = f"unix://{self.socket}"
        self.log = self.root / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # Its own bridge: with `--bridge none` dockerd deletes the host's docker0, breaking
        # the system engine's default network (builds that fetch packages, for one).
        self.bridge = "exd" + self.root.name[-8:].replace("_", "")[-8:]

    @staticmethod
    def available() -> bool:
        """Whether this machine can run a second engine (dockerd present, running as root)."""
        return (
            shutil.which("dockerd") is not None
            and shutil.which("ip") is not None
            and os.geteuid() == 0
        )

    def docker(
        self, *args: str, check: bool = True, **kwargs: object
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the docker CLI against this engine."""
        return subprocess.run(
            ["docker", "-H", self.url, *args],
            capture_output=True,
            check=check,
            **kwargs,  # type: ignore[call-overload]
        )

    def start(self, timeout: float = 60.0) -> None:
        """Start dockerd and wait until it answers."""
        if self.proc is not None and self.proc.poll() is None:
            return
        for sub in ("data", "exec"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._make_bridge()
        self.socket.unlink(missing_ok=True)
        with self.log.open("ab") as log:  # the child keeps its own copy of the fd
            self.proc = self._spawn(log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private dockerd exited: {self.log.read_text()[-2000:]}")
            if self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(
            f"private dockerd did not answer in {timeout} s: {self.log.read_text()[-2000:]}"
        )

    def _spawn(self, log: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                "dockerd",
                "--host",
                self.url,
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "dockerd.pid"),
                "--bridge",
                self.bridge,
                "--iptables=false",
                "--ip-masq=false",
                "--storage-driver",
                "overlay2",
            ],
            stdout=log,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _make_bridge(self) -> None:
        """Create this engine's bridge (an address from a reserved test range, no traffic)."""
        if Path(f"/sys/class/net/{self.bridge}").exists():
            return
        octet = int(self.root.name.encode().hex(), 16) % 200 + 20
        for cmd in (
            ["ip", "link", "add", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"172.31.{octet}.1/24", "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ):
            subprocess.run(cmd, check=True, capture_output=True)

    def stop(self, *, kill: bool = False) -> None:
        """Stop dockerd (SIGTERM, or SIGKILL with ``kill=True``) and wait for it to exit."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def load_image(self, image: str) -> None:
        """Copy ``image`` from the system engine into this one (skipped if present)."""
        if self.docker("image", "inspect", image, check=False).returncode == 0:
            return
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        try:
            self.docker("load", "-q", stdin=save.stdout)
        finally:
            assert save.stdout is not None
            save.stdout.close()
            save.wait(timeout=120)

    def remove_all_containers(self) -> None:
        """Force-remove every container on this engine."""
        ids = self.docker("ps", "-aq", check=False).stdout.decode().split()
        if ids:
            self.docker("rm", "-f", *ids, check=False)

    def destroy(self) -> None:
        """Stop the engine and delete its state."""
        if self.proc is not None and self.proc.poll() is None:
            self.remove_all_containers()
        self.stop()
        # Leftover mounts under the data root would make rmtree fail; unmount them first.
        subprocess.run(
            f"grep -o ' {self.root}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
            shell=True,
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)
        subprocess.run(["ip", "link", "delete", self.bridge], check=False, capture_output=True)
