"""Every runner against every vector in tests/vectors/, as a host process and in its image.

Host mode runs ``runners/python/runner.py`` with this Python, ``runners/node/run.sh`` with the
host's node, and the Go runner built with the host's Go toolchain (each skips when the
toolchain is missing). Image mode runs ``docker run -i --rm`` on the runner image, locked down
(read-only root, no network, no capabilities, only /tmp writable), with the vector's user
module mounted where the image expects it (Go: a static runner binary built with the module).

Fork-mode vectors (``fork``) run only inside images, with the runner as the container's init:
fork mode kills every process it may signal and wipes /tmp, which must never happen on a host.
The host-process half only checks that fork mode refuses to start when it is not PID 1.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from executor.protocol import decode_response
from tests._gorunner import build_go_runner

from ._gvisor import gvisor_profile_file

ROOT = Path(__file__).resolve().parents[2]
VECTORS_DIR = ROOT / "tests" / "vectors"
MODULES = Path(__file__).resolve().parent / "modules"
RUNNERS = ROOT / "runners"
LANGUAGES = ("python", "node", "go")
IMAGES = {
    lang: os.environ.get(f"EXECUTOR_{lang.upper()}_IMAGE", f"executor/runner-{lang}:latest")
    for lang in LANGUAGES
}
#: The lockdown the container executor applies; every image check runs under it.
#: The executor's seccomp profile applies too: the runners' own calls (fork mode's prctl, kill,
#: wait, System V IPC removal) must pass it.
SECCOMP = ROOT / "executor" / "container" / "seccomp.json"
LOCKDOWN = ("--read-only", "--network", "none", "--cap-drop", "ALL", "--tmpfs", "/tmp")
LOCKDOWN += ("--security-opt", f"seccomp={SECCOMP}")


def gvisor_lockdown(runtime: str) -> tuple[str, ...]:
    """The runtime and, after LOCKDOWN's, the profile the executor sends under gVisor (the
    last ``seccomp=`` option wins): ``clone3`` left to gVisor's kernel (docs/SECURITY.md)."""
    return ("--runtime", runtime, "--security-opt", f"seccomp={gvisor_profile_file()}")


#: Where each image looks for the user module.
MODULE_MOUNT = {"python": "/app/execute.py", "node": "/app/execute.mjs"}
SUFFIX = {"python": ".py", "node": ".mjs"}
TIMEOUT = 120


def load_vectors() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(VECTORS_DIR.glob("*.json"))]


VECTORS = load_vectors()
#: Vectors a runner may run as a plain host process (fork mode runs only inside images).
HOST_VECTORS = [v for v in VECTORS if "fork" not in v]
FORK_VECTORS = [v for v in VECTORS if "fork" in v]


@dataclass
class Launch:
    """How to start one runner process for one vector."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    name: str | None = None  # the container name, for cleanup after a timeout


# --- building the requests and checking the responses ---------------------------------------


def request_bytes(item: dict[str, Any]) -> bytes:
    if "request_text" in item:
        return str(item["request_text"]).encode()
    request = dict(item["request"])
    if "input_repeat" in item:
        spec = item["input_repeat"]
        request["input"] = {"text": spec["string"] * spec["times"]}
    return json.dumps(request, ensure_ascii=False).encode()


def per_language(value: Any, lang: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):
        return list(value.get(lang, []))
    return list(value)


def check_response(raw: bytes, expect: dict[str, Any], lang: str, sent: bytes) -> None:
    """``raw`` is exactly one protocol response matching ``expect``."""
    decode_response(raw)  # the host's own decoder accepts it
    response = json.loads(raw)
    assert response["ok"] is expect["ok"], response
    if "log_marker" in expect:
        assert response.get("log_marker") == expect["log_marker"], response
    if expect["ok"]:
        assert "error" not in response
        check_usage(response)
        if expect.get("output_is_input"):
            assert response["output"] == json.loads(sent)["input"]
        else:
            assert response["output"] == expect["output"]
        if "files" in expect:
            files = {k: base64.b64decode(v, validate=True) for k, v in response["files"].items()}
            assert files == {k: v.encode() for k, v in expect["files"].items()}, response
        return
    error = response["error"]
    assert isinstance(error["message"], str) and error["message"], error
    assert error["code"] == expect["code"], error
    if "message_contains" in expect:
        assert expect["message_contains"] in error["message"], error
    if "exit_code" in expect:
        assert error.get("exit_code") == expect["exit_code"], error
    for needle in per_language(expect.get("details_contains"), lang):
        assert needle in (error.get("details") or ""), (needle, error)


def check_usage(response: dict[str, Any]) -> None:
    """An ok response carries ``usage``: CPU and wall seconds, the peak resident set in bytes
    or null (a serve-mode runner that cannot make it the call's own)."""
    usage = response.get("usage")
    assert isinstance(usage, dict), response
    assert set(usage) == {"cpu_time", "peak_memory", "wall_time"}, usage
    for key in ("cpu_time", "wall_time"):
        assert isinstance(usage[key], int | float) and usage[key] >= 0, usage
    peak = usage["peak_memory"]
    assert peak is None or (isinstance(peak, int) and peak > 0), usage


def check_stderr(stderr: str, vector: dict[str, Any], lang: str) -> None:
    for needle in per_language(vector.get("stderr_contains"), lang):
        assert needle in stderr, (needle, stderr[-2000:])
    if "stderr_ends_with" in vector:
        assert stderr.endswith(vector["stderr_ends_with"]), stderr[-2000:]


def run_single(launch: Launch, vector: dict[str, Any], lang: str) -> None:
    sent = request_bytes(vector)
    try:
        done = subprocess.run(
            launch.argv,
            input=sent,
            capture_output=True,
            env={**os.environ, **launch.env},
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        cleanup(launch)
        raise
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, f"exit {done.returncode}; stderr:\n{stderr[-2000:]}"
    check_response(done.stdout, vector["expect"], lang, sent)
    check_stderr(stderr, vector, lang)


def run_serve(launch: Launch, vector: dict[str, Any], lang: str) -> None:
    """Send each request and read its line before sending the next (proves the flush)."""
    serve = vector["serve"]
    argv = [*launch.argv, serve["flag"]] if "flag" in serve else launch.argv
    env = {**os.environ, **launch.env, **serve.get("env", {})}
    if launch.name is not None and "env" in serve:
        flags = [a for k, v in serve["env"].items() for a in ("-e", f"{k}={v}")]
        argv = [*argv[:3], *flags, *argv[3:]]  # after `docker run -i`
    with (
        tempfile.TemporaryFile() as stderr,
        subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env
        ) as process,
    ):
        assert process.stdin is not None and process.stdout is not None
        try:
            answered = 0
            for _ in range(serve["repeat"]):
                for exchange in serve["exchanges"]:
                    sent = request_bytes(exchange)
                    process.stdin.write(sent.replace(b"\n", b" ") + b"\n")
                    process.stdin.flush()
                    line = process.stdout.readline()
                    assert line.endswith(b"\n"), f"no answer to request {answered + 1}"
                    check_response(line, exchange["expect"], lang, sent)
                    answered += 1
            process.stdin.close()
            assert process.stdout.read() == b"", "output after the last response"
            assert process.wait(timeout=TIMEOUT) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
                cleanup(launch)


def check_ready(line: bytes, when: str) -> None:
    """A fork-mode ready line: a JSON object with "ready": true and never an "ok"."""
    assert line.endswith(b"\n"), f"no ready line {when}: the runner's stdout ended"
    ready = json.loads(line)
    assert isinstance(ready, dict), line
    assert ready.get("ready") is True and "ok" not in ready, line


def run_fork(launch: Launch, vector: dict[str, Any], lang: str, gvisor: bool = False) -> None:
    """Fork mode in a container: a ready line, then a response and a ready line per request;
    at the end of stdin the runner exits 0. Under gVisor ``fork.gvisor`` overrides ``fork``.

    An exchange expecting ``{"container_exit": N}`` gets no answer: the runner's stdout ends
    and the container exits with status N (it must be the last exchange).
    """
    assert launch.name is not None, "fork vectors run only inside images"
    fork = dict(vector["fork"])
    if gvisor:
        fork.update(fork.pop("gvisor", {}))
    flags = ["-e", "EXECUTOR_SERVE=fork", *vector.get("docker_args", [])]
    argv = [*launch.argv[:3], *flags, *launch.argv[3:]]  # after `docker run -i`
    exchanges = [e for _ in range(fork.get("repeat", 1)) for e in fork["exchanges"]]
    with (
        tempfile.TemporaryFile() as stderr,
        subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        ) as process,
    ):
        assert process.stdin is not None and process.stdout is not None

        def stop() -> None:
            cleanup(launch)
            process.kill()

        watchdog = threading.Timer(TIMEOUT, stop)  # a hung runner fails the test, not the run
        watchdog.start()
        try:
            expected_exit = 0
            check_ready(process.stdout.readline(), "at start-up")
            for number, exchange in enumerate(exchanges, 1):
                sent = request_bytes(exchange)
                process.stdin.write(sent.replace(b"\n", b" ") + b"\n")
                process.stdin.flush()
                expect = exchange["expect"]
                if "container_exit" in expect:
                    assert number == len(exchanges), "container_exit must come last"
                    expected_exit = expect["container_exit"]
                    assert process.stdout.read() == b"", "an answer, yet the container should end"
                    break
                line = process.stdout.readline()
                assert line.endswith(b"\n"), f"no answer to request {number}"
                check_response(line, expect, lang, sent)
                check_ready(process.stdout.readline(), f"after request {number}")
            else:
                process.stdin.close()
                assert process.stdout.read() == b"", "output after the last ready line"
            assert process.wait(timeout=TIMEOUT) == expected_exit
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
                cleanup(launch)
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
        stderr.seek(0)
        check_stderr(stderr.read().decode("utf-8", "replace"), vector, lang)


def cleanup(launch: Launch) -> None:
    if launch.name is not None:
        subprocess.run(["docker", "rm", "-f", launch.name], capture_output=True, check=False)


def run_vector(launch: Launch, vector: dict[str, Any], lang: str) -> None:
    if "fork" in vector:
        run_fork(launch, vector, lang)
    elif "serve" in vector:
        run_serve(launch, vector, lang)
    else:
        run_single(launch, vector, lang)


def skip_reason(vector: dict[str, Any], lang: str) -> str | None:
    reason = vector.get("skip", {}).get(lang)
    return str(reason) if reason else None


# --- Go binaries with a user function compiled in -------------------------------------------


class GoBuilder:
    """Builds the Go runner with a test module as its function (static, cached per module)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.built: dict[str, Path] = {}

    def binary(self, module: str) -> Path:
        if module in self.built:
            return self.built[module]
        out = build_go_runner(MODULES / "go" / module, self.workdir / "bin" / module)
        self.built[module] = out
        return out


@pytest.fixture(scope="session")
def go_builder(tmp_path_factory: pytest.TempPathFactory) -> GoBuilder:
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain on PATH (Debian: apt-get install golang-go)")
    return GoBuilder(tmp_path_factory.mktemp("go-runners"))


def module_path(lang: str, module: str | None) -> Path:
    if module is None:
        return MODULES / lang / f"__missing__{SUFFIX[lang]}"
    return MODULES / lang / f"{module}{SUFFIX[lang]}"


# --- host processes ---------------------------------------------------------------------------


def host_launch(lang: str, vector: dict[str, Any], request: pytest.FixtureRequest) -> Launch:
    if lang == "python":
        env = {"EXECUTOR_MODULE": str(module_path(lang, vector["module"]))}
        return Launch([sys.executable, str(RUNNERS / "python" / "runner.py")], env)
    if lang == "node":
        if shutil.which("node") is None:
            pytest.skip("node is not on PATH")
        env = {"EXECUTOR_MODULE": str(module_path(lang, vector["module"]))}
        return Launch([str(RUNNERS / "node" / "run.sh")], env)
    builder: GoBuilder = request.getfixturevalue("go_builder")
    return Launch([str(builder.binary(vector["module"]))])


@pytest.mark.parametrize("vector", HOST_VECTORS, ids=[v["name"] for v in HOST_VECTORS])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_host_process(lang: str, vector: dict[str, Any], request: pytest.FixtureRequest) -> None:
    """The runner, started as a plain host process, answers the vector as specified."""
    reason = skip_reason(vector, lang)
    if reason:
        pytest.skip(reason)
    run_vector(host_launch(lang, vector, request), vector, lang)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_host_process_refuses_fork_mode(lang: str, request: pytest.FixtureRequest) -> None:
    """Fork mode refuses to start unless it is PID 1: exit 2 and one stderr line, no output.

    Safe on a host only because the check comes before anything else; a runner without fork
    mode yet is skipped through fork_errors_survive's skip.
    """
    reference = next(v for v in FORK_VECTORS if v["name"] == "fork_errors_survive")
    reason = skip_reason(reference, lang)
    if reason:
        pytest.skip(reason)
    launch = host_launch(lang, reference, request)
    done = subprocess.run(
        launch.argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env={**os.environ, **launch.env, "EXECUTOR_SERVE": "fork"},
        timeout=TIMEOUT,
        check=False,
    )
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, f"exit {done.returncode}; stderr:\n{stderr[-2000:]}"
    assert done.stdout == b""
    assert "PID 1" in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_node_runner_without_wrapper() -> None:
    """Started as plain `node runner.mjs` (no fd 3), the Node runner still isolates stdout."""
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH")
    vector = json.loads((VECTORS_DIR / "child_process_stdout.json").read_text())
    launch = Launch(
        ["node", str(RUNNERS / "node" / "runner.mjs")],
        {"EXECUTOR_MODULE": str(module_path("node", vector["module"]))},
    )
    run_vector(launch, vector, "node")


# --- inside the images -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def runner_images() -> dict[str, str]:
    """The runner images, present on the engine (else skip, or fail under REQUIRE_DOCKER)."""
    missing = [
        image
        for image in IMAGES.values()
        if subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, check=False
        ).returncode
        != 0
    ]
    if missing:
        message = f"runner images missing: {', '.join(missing)}; run `make images`"
        if os.environ.get("EXECUTOR_REQUIRE_DOCKER") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return IMAGES


def docker_launch(
    lang: str,
    module: str | None,
    images: dict[str, str],
    request: pytest.FixtureRequest,
    extra: tuple[str, ...] = (),
) -> Launch:
    name = f"executor-conformance-{uuid.uuid4().hex[:12]}"
    argv = ["docker", "run", "-i", "--rm", "--name", name, *LOCKDOWN, *extra]
    if lang == "go":
        builder: GoBuilder = request.getfixturevalue("go_builder")
        binary = builder.binary(module or "echo")
        argv += ["-v", f"{binary}:/usr/local/bin/executor-runner:ro"]
    elif module is None:
        argv += ["-e", f"EXECUTOR_MODULE=/app/__missing__{SUFFIX[lang]}"]
    else:
        argv += ["-v", f"{module_path(lang, module)}:{MODULE_MOUNT[lang]}:ro"]
    return Launch([*argv, images[lang]], name=name)


@pytest.mark.docker
@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_in_image(
    lang: str,
    vector: dict[str, Any],
    runner_images: dict[str, str],
    request: pytest.FixtureRequest,
) -> None:
    """The runner image, locked down, answers the vector as specified."""
    reason = skip_reason(vector, lang)
    if reason:
        pytest.skip(reason)
    run_vector(docker_launch(lang, vector["module"], runner_images, request), vector, lang)


@pytest.mark.docker
@pytest.mark.parametrize("lang", LANGUAGES)
def test_image_without_a_task(lang: str, runner_images: dict[str, str]) -> None:
    """A fresh Python or Node image, with nothing mounted, has no task of its own: NO_TASK
    naming the module path to fill. The Go image's task is compiled in: its stock one echoes."""
    request = {"schema_in": None, "schema_out": None, "input": {"fresh": lang}}
    done = subprocess.run(
        ["docker", "run", "-i", "--rm", *LOCKDOWN, runner_images[lang]],
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    response = json.loads(done.stdout)
    if lang == "go":
        check_usage(response)
        assert response["ok"] is True and response["output"] == {"fresh": lang}, response
        return
    assert response["ok"] is False and response["error"]["code"] == "NO_TASK", response
    assert MODULE_MOUNT[lang] in response["error"]["message"]


WHOAMI = {
    "python": (
        "import os\n"
        "def execute(input):\n"
        "    def writable(path):\n"
        "        try:\n"
        "            with open(path, 'w') as f:\n"
        "                f.write('x')\n"
        "            return True\n"
        "        except OSError:\n"
        "            return False\n"
        "    return {'uid': os.getuid(), 'gid': os.getgid(),\n"
        "            'tmp': writable('/tmp/probe'), 'app': writable('/app/probe'),\n"
        "            'root': writable('/probe')}\n"
    ),
    "node": (
        "import fs from 'node:fs';\n"
        "function writable(p) {\n"
        "  try { fs.writeFileSync(p, 'x'); return true; } catch { return false; }\n"
        "}\n"
        "export function executeFunction() {\n"
        "  return { uid: process.getuid(), gid: process.getgid(), tmp: writable('/tmp/probe'),\n"
        "           app: writable('/app/probe'), root: writable('/probe') };\n"
        "}\n"
    ),
}


@pytest.mark.docker
@pytest.mark.parametrize("lang", LANGUAGES)
def test_image_user_and_filesystem(
    lang: str, runner_images: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Images run as UID 1000 and, locked down, can write /tmp and nothing else."""
    inspected = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Config.User}}", runner_images[lang]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert inspected.stdout.strip() == "1000:1000"
    if lang == "go":
        module_dir = MODULES / "go" / "whoami"
        if not module_dir.exists():
            pytest.skip("no Go whoami module")
        launch = docker_launch(lang, "whoami", runner_images, request)
    else:
        probe = tmp_path / f"whoami{SUFFIX[lang]}"
        probe.write_text(WHOAMI[lang])
        probe.chmod(0o644)
        tmp_path.chmod(0o755)
        launch = docker_launch(lang, None, runner_images, request)
        launch.argv[-1:-1] = ["-v", f"{probe}:{MODULE_MOUNT[lang]}:ro"]
        launch.argv.remove(f"EXECUTOR_MODULE=/app/__missing__{SUFFIX[lang]}")
        launch.argv.remove("-e")
    vector = {
        "request": {"schema_in": None, "schema_out": None, "input": None},
        "expect": {
            "ok": True,
            "output": {"uid": 1000, "gid": 1000, "tmp": True, "app": False, "root": False},
        },
    }
    run_single(launch, vector, lang)


@pytest.fixture(scope="session")
def runsc_runtime() -> str:
    """The gVisor runtime name, when the engine has one registered (else skip)."""
    runtimes = subprocess.run(
        ["docker", "info", "--format", "{{json .Runtimes}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if runtimes.returncode != 0 or "runsc" not in json.loads(runtimes.stdout or "{}"):
        pytest.skip("the engine has no runsc (gVisor) runtime; `make engine` registers it")
    return "runsc"


@pytest.mark.docker
@pytest.mark.parametrize("name", ["echo", "child_process_stdout", "serve_errors_survive"])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_in_image_under_gvisor(
    lang: str,
    name: str,
    runner_images: dict[str, str],
    runsc_runtime: str,
    request: pytest.FixtureRequest,
) -> None:
    """The runner images also speak the protocol under gVisor (runtime runsc)."""
    vector = json.loads((VECTORS_DIR / f"{name}.json").read_text())
    extra = gvisor_lockdown(runsc_runtime)
    run_vector(docker_launch(lang, vector["module"], runner_images, request, extra), vector, lang)


@pytest.mark.docker
@pytest.mark.parametrize("vector", FORK_VECTORS, ids=[v["name"] for v in FORK_VECTORS])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_fork_in_image_under_gvisor(
    lang: str,
    vector: dict[str, Any],
    runner_images: dict[str, str],
    runsc_runtime: str,
    request: pytest.FixtureRequest,
) -> None:
    """Fork mode under gVisor: no pidfd, no /proc/sysvipc, no memory cgroup inside."""
    reason = skip_reason(vector, lang)
    if reason:
        pytest.skip(reason)
    extra = gvisor_lockdown(runsc_runtime)
    launch = docker_launch(lang, vector["module"], runner_images, request, extra)
    run_fork(launch, vector, lang, gvisor=True)
