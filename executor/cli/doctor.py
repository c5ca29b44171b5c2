"""``executor doctor``: is everything in place? The engine, its runtimes, images, one call."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import click

from .._errors import EngineError, EngineUnavailable, ExecutorError
from .engine import ENGINE_TIMEOUT, bounded, connect
from .images import version_of
from .output import EXIT_FAILED
from .targets import RUNNER_IMAGES

if TYPE_CHECKING:
    from ..engine import Engine

__all__ = ["Check", "diagnose", "doctor"]

MIN_API_VERSION = (1, 41)


@dataclass
class Check:
    """One doctor finding: ``status`` is ``ok``, ``warn`` (optional) or ``fail``."""

    name: str
    status: str
    detail: str
    fix: str | None = None


async def diagnose(smoke: bool = True) -> list[Check]:
    """Check the engine, its API version, runtimes, the runner images and one real call."""
    from .. import __version__

    checks: list[Check] = []
    pinged = False
    try:
        async with connect() as engine:
            await bounded(engine.ping(), "a ping", engine.name)
            pinged = True
            info = await bounded(engine.info(), "an info request", engine.name)
            product = "Podman" if info.kind == "podman" else "Docker"
            checks.append(
                Check("engine", "ok", f"{info.name}: {product} {info.version} ({info.os})")
            )
            if info.kind == "podman":
                checks.append(
                    Check(
                        "podman",
                        "warn",
                        "Podman's Docker-compatible API (README, section Podman): Podman 4.3 "
                        "sets no OOM flag, so exit status 137 under the memory limit is read as "
                        "OOM_KILLED; the runtimes listed are those Podman's configuration names, "
                        "installed or not; images loaded with `docker save | podman load` "
                        "are named localhost/..., which the executor finds by their short name",
                    )
                )
            api = info.api_version
            api_tuple = tuple(int(p) for p in api.split(".") if p.isdigit())
            if api_tuple >= MIN_API_VERSION:
                checks.append(Check("api", "ok", f"API {api} (need >= 1.41)"))
            else:
                checks.append(
                    Check(
                        "api",
                        "fail",
                        f"API {api} is older than 1.41",
                        "upgrade the engine (Docker 20.10 or newer)",
                    )
                )
            runtimes = list(info.runtimes)
            if "runsc" in runtimes:
                maybe = " if installed on the engine's host" if info.kind == "podman" else ""
                checks.append(
                    Check(
                        "runtimes",
                        "ok",
                        f"{', '.join(runtimes)} (default {info.default_runtime}); gVisor "
                        f"available{maybe}: --runtime runsc / ContainerConfig(runtime='runsc')",
                    )
                )
            else:
                checks.append(
                    Check(
                        "runtimes",
                        "warn",
                        f"{', '.join(runtimes) or 'none reported'}; runsc (gVisor) is not "
                        "registered, so containers share the host kernel (optional hardening)",
                        "install gVisor and register it as a runtime (on Debian as root, "
                        "`make engine` in a checkout does both)",
                    )
                )
            for language, ref in RUNNER_IMAGES.items():
                checks.append(await _image_check(engine, language, ref, __version__))
    except EngineUnavailable as exc:
        checks.append(
            Check(
                "engine",
                "fail",
                exc.message.split(" Is the engine")[0],
                "start a Docker engine (or Podman's API service) and point DOCKER_HOST at it "
                "(e.g. unix:///var/run/docker.sock); from a checkout on Debian, `make engine`",
            )
        )
        return checks
    except EngineError as exc:
        where = exc.engine or "DOCKER_HOST"
        if pinged:
            checks.append(Check("engine", "fail", exc.message, "see the message"))
        else:
            # Its ping had an answer, but no Docker one (DockerEngine.ping): a 4xx, a 2xx
            # without the Api-Version header, or something aiodocker could not read.
            if exc.status is None:
                answer = "an unreadable answer to its ping"
            elif exc.status >= 400:
                answer = f"HTTP {exc.status} to its ping"
            else:
                answer = f"HTTP {exc.status} to its ping without the Api-Version header"
            refuses = ", or one that refuses this client" if (exc.status or 0) >= 400 else ""
            checks.append(
                Check(
                    "engine",
                    "fail",
                    f"the server at {where} answered but is not a Docker Engine API "
                    f"({answer}){refuses}",
                    "check DOCKER_HOST (and `docker context ls`): it must name a Docker engine "
                    "or Podman's API service, e.g. unix:///var/run/docker.sock",
                )
            )
        return checks
    if smoke and all(c.status != "fail" for c in checks):
        checks.append(await _smoke_check())
    if smoke and all(c.status != "fail" for c in checks):
        checks.append(await _seccomp_check())
    return checks


async def _image_check(engine: Engine, language: str, ref: str, version: str) -> Check:
    image = await bounded(engine.images.inspect(ref), f"inspecting {ref}", engine.name)
    target = f"runner-{language}"
    if image is None:
        return Check(target, "fail", f"{ref} is missing", f"executor images build {target}")
    found = version_of(image) or "unversioned"
    if found != version:
        return Check(
            target,
            "warn",
            f"{ref} is version {found}, the library is {version}",
            f"rebuild it: executor images build {target}",
        )
    return Check(target, "ok", f"{ref} version {found} ({str(image.get('Id', ''))[7:19]})")


async def _smoke_check() -> Check:
    from ..container import ContainerConfig, ContainerExecutor

    # The stock image has no task of its own (NO_TASK): give it an echo one.
    config = ContainerConfig(
        RUNNER_IMAGES["python"],
        files={"/app/execute.py": "def execute(input):\n    return input\n"},
        timeout=ENGINE_TIMEOUT * 2,
    )
    started = time.monotonic()
    try:
        async with ContainerExecutor[Any, Any](config) as ex:
            output = await ex.execute({"doctor": True})
    except ExecutorError as exc:
        fix = f"see the message; `docker run --rm {config.image}` shows more"
        if "error setting rlimit" in exc.message:
            # Podman sets 1048576 open files and processes unless configured otherwise, which
            # fails where the engine may not raise its own limits (no CAP_SYS_RESOURCE).
            fix = (
                "the engine may not raise resource limits: give it defaults within its own, "
                "e.g. in /etc/containers/containers.conf: [containers] default_ulimits = "
                '["nofile=N:N", "nproc=M:M"] (N, M: the service\'s `ulimit -Hn`, `ulimit -Hu`), '
                "then restart the Podman service"
            )
        return Check(
            "container",
            "fail",
            f"a locked-down python runner call failed: [{exc.code}] {exc.message}",
            fix,
        )
    if output != {"doctor": True}:
        return Check(
            "container",
            "fail",
            f"the echo call returned {output!r}",
            "rebuild the images: executor images build runners",
        )
    return Check(
        "container",
        "ok",
        f"a locked-down python runner call took {time.monotonic() - started:.2f} s",
    )


#: Run in one short-lived container: the errno names of two calls the profile must refuse.
_SECCOMP_PROBE = """
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
unshare = {"x86_64": 272, "aarch64": 97}[os.uname().machine]
params = ctypes.create_string_buffer(120)
calls = {
    "io_uring_setup": (425, 4, ctypes.addressof(params)),
    "unshare(CLONE_NEWUSER)": (unshare, 0x10000000),
}
out = {}
for name, args in calls.items():
    if libc.syscall(*args) >= 0:
        out[name] = "allowed"
    else:
        out[name] = "refused (" + errno.errorcode.get(ctypes.get_errno(), "?") + ")"
print(json.dumps(out))
"""


async def _seccomp_check() -> Check:
    """The profile in force, and one container showing that it refuses what it must."""
    from .._code import CodeRun
    from ..container import CodeExecutor, ContainerConfig

    config = ContainerConfig(RUNNER_IMAGES["python"], timeout=ENGINE_TIMEOUT * 2)
    profile = "the library's profile (moby's default less io_uring, namespaces, ptrace, ...)"
    try:
        async with CodeExecutor("python", config) as ex:
            result = await ex.run(CodeRun(code=_SECCOMP_PROBE))
        found: dict[str, str] = json.loads(result.output.stdout)
    except (ExecutorError, ValueError) as exc:
        return Check("seccomp", "fail", f"{profile}; the probe call failed: {exc}")
    said = ", ".join(f"{name} {outcome}" for name, outcome in found.items())
    if "allowed" in found.values():
        return Check(
            "seccomp",
            "fail",
            f"{profile}, but in a container {said}: the engine did not apply it",
            "upgrade the engine (Docker 20.10+, Podman 4+) and check that seccomp is enabled "
            "(`docker info` lists it under Security Options)",
        )
    return Check("seccomp", "ok", f"{profile}: {said}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per check.")
@click.option("--no-smoke", is_flag=True, help="Skip the test call in a container.")
def doctor(as_json: bool, no_smoke: bool) -> None:
    """Check the engine, runtimes and runner images; print a fix for each problem.

    Exit status 0 when nothing failed (warnings allowed), 1 otherwise.
    """
    checks = anyio.run(diagnose, not no_smoke)
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        for c in checks:
            click.echo(json.dumps({k: v for k, v in c.__dict__.items() if v is not None}))
    else:
        marks = {"ok": ("ok  ", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "bold red")}
        tty = sys.stdout.isatty()
        for c in checks:
            mark, style = marks[c.status]
            if tty:
                from rich.console import Console
                from rich.text import Text

                text = Text()
                text.append(mark, style=style)
                text.append(f"  {c.name:<14} {c.detail}")
                if c.fix:
                    text.append(f"\n      fix: {c.fix}", style="cyan")
                Console(highlight=False).print(text)
            else:
                click.echo(f"{mark}  {c.name:<14} {c.detail}")
                if c.fix:
                    click.echo(f"      fix: {c.fix}")
        click.echo(
            f"doctor: {len(failed)} problem(s)" if failed else "doctor: everything is in place"
        )
    sys.exit(EXIT_FAILED if failed else 0)
