"""The bake-file reader and the Engine API image builder (executor.build)."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import executor
from executor import ConfigError, EngineUnavailable, ImageBuildFailed
from executor.build import CONTEXT_HASH_LABEL, build_images, load_bake, resolve_targets

ROOT = Path(__file__).resolve().parents[2]
BAKE = ROOT / "docker-bake.hcl"
VERSION = executor.__version__
MODULES = Path(__file__).resolve().parent / "modules"


def test_repo_bake_file_targets_and_tags() -> None:
    """The repo's bake file yields the four targets with versioned and latest tags."""
    specs = load_bake(BAKE)
    assert set(specs) >= {"runner-python", "runner-node", "runner-go", "generator-orval"}
    for lang in ("python", "node", "go"):
        spec = specs[f"runner-{lang}"]
        assert spec.tags == (f"executor/runner-{lang}:{VERSION}", f"executor/runner-{lang}:latest")
        # Node's context is runners/ itself (its image compiles the Go fork supervisor).
        assert (spec.context / spec.dockerfile).parent == ROOT / "runners" / lang
        assert (spec.context / spec.dockerfile).is_file()
    assert specs["runner-python"].args == {"BASE_IMAGE": "python:3.12-slim"}
    assert specs["generator-orval"].args["BASE_IMAGE"] == f"executor/runner-node:{VERSION}"
    assert specs["runner-go"].network == "none"  # the Go build needs no network
    # The Python runner plus compilers (apt in its build) and the Node base's node.
    judge = specs["runner-judge"]
    assert judge.tags == (f"executor/runner-judge:{VERSION}", "executor/runner-judge:latest")
    assert judge.args == {"BASE_IMAGE": "python:3.12-slim", "NODE_IMAGE": "node:22-slim"}
    assert (judge.context / judge.dockerfile).is_file()


def test_groups_expand_in_order() -> None:
    """Groups (nested too) expand to targets in order, without duplicates."""
    assert resolve_targets(BAKE, ["runners"]) == ["runner-python", "runner-node", "runner-go"]
    assert resolve_targets(BAKE, ["default", "runner-go"]) == [
        "runner-python",
        "runner-node",
        "runner-go",
        "generator-orval",
        "runner-judge",
    ]
    with pytest.raises(ConfigError, match="no target or group"):
        resolve_targets(BAKE, ["nope"])


def test_variables_override_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit variables beat the environment, which beats the defaults."""
    monkeypatch.setenv("VERSION", "from-env")
    monkeypatch.setenv("REGISTRY", "env.example/executor")
    specs = load_bake(BAKE, {"VERSION": "9.9.9", "PYTHON_BASE": "my/python:1"})
    spec = specs["runner-python"]
    assert spec.tags[0] == "env.example/executor/runner-python:9.9.9"
    assert spec.args == {"BASE_IMAGE": "my/python:1"}


def test_interpolation_inherits_and_errors(tmp_path: Path) -> None:
    """${VAR} in strings, bare references, $${ escapes, inherits; unknown names are errors."""
    (tmp_path / "ctx").mkdir()
    bake = tmp_path / "docker-bake.hcl"
    bake.write_text(
        'variable "A" { default = "a" }\n'
        'variable "B" { default = "${A}-b" }\n'
        'target "_base" {\n  context = "ctx"\n  args = { X = "1", Y = "2" }\n}\n'
        'target "t" {\n'
        '  inherits = ["_base"]\n'
        '  args = { Y = B, Z = "$${literal}" }\n'
        '  tags = ["r/t:${B}"]\n'
        "}\n"
    )
    spec = load_bake(bake)["t"]
    assert spec.context == tmp_path / "ctx"
    assert spec.args == {"X": "1", "Y": "a-b", "Z": "${literal}"}
    assert spec.tags == ("r/t:a-b",)
    bake.write_text('target "t" {\n  tags = ["${NOPE}"]\n}\n')
    with pytest.raises(ConfigError, match="unknown variable 'NOPE'"):
        load_bake(bake)
    bake.write_text('target "t" {\n  tags = [\n')
    with pytest.raises(ConfigError, match="not valid HCL"):
        load_bake(bake)


# --- on an engine -----------------------------------------------------------------------------


def _go_function_context(tmp_path: Path, module: str) -> Path:
    context = tmp_path / "go"
    shutil.copytree(ROOT / "runners" / "go", context, ignore=shutil.ignore_patterns("node_modules"))
    shutil.copytree(MODULES / "go" / module, context / "functions" / module)
    return context


@pytest.mark.docker
async def test_build_custom_go_function_image(tmp_path: Path) -> None:
    """A Go function directory given as FUNCTION_DIR is compiled into a working image,
    built through the Engine API; a second build with nothing changed is skipped."""
    context = _go_function_context(tmp_path, "stats")
    tag = f"executor-test/runner-go-stats:{uuid.uuid4().hex[:8]}"
    bake = tmp_path / "docker-bake.hcl"
    repo_bake = BAKE.read_text()
    go_build_default = repo_bake.split('variable "GO_BUILD_BASE"')[1].split('"')[1]
    bake.write_text(
        f'variable "GO_BUILD_BASE" {{ default = "{go_build_default}" }}\n'
        'target "stats" {\n'
        f'  context = "{context}"\n'
        '  network = "none"\n'
        '  args = { GO_BUILD_BASE = GO_BUILD_BASE, BASE_IMAGE = "scratch",'
        ' FUNCTION_DIR = "functions/stats" }\n'
        f'  tags = ["{tag}"]\n'
        "}\n"
    )
    lines: list[str] = []
    try:
        assert await build_images(["stats"], bake_file=bake, progress=lines.append) == [tag]
        request = {"schema_in": None, "schema_out": None, "input": {"values": [1, 2, 6]}}
        done = subprocess.run(
            ["docker", "run", "-i", "--rm", "--read-only", "--network", "none", tag],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=60,
            check=True,
        )
        response = json.loads(done.stdout)
        response.pop("usage", None)  # the runner's measurement of the call
        assert response == {
            "ok": True,
            "output": {"count": 3, "sum": 9, "mean": 3},
        }
        label = subprocess.run(
            [
                "docker",
                "image",
                "inspect",
                "-f",
                f'{{{{index .Config.Labels "{CONTEXT_HASH_LABEL}"}}}}',
                tag,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert len(label) == 64
        lines.clear()
        assert await build_images(["stats"], bake_file=bake, progress=lines.append) == [tag]
        assert any("up to date" in line for line in lines), lines
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


@pytest.mark.docker
async def test_failed_build_reports_the_log_tail(tmp_path: Path) -> None:
    """A failing Dockerfile step raises ImageBuildFailed (BUILD_FAILED) with the log tail."""
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\nCOPY does-not-exist /nowhere\n")
    bake = tmp_path / "docker-bake.hcl"
    tag = f"executor-test/broken:{uuid.uuid4().hex[:8]}"
    bake.write_text(f'target "broken" {{\n  context = "ctx"\n  tags = ["{tag}"]\n}}\n')
    with pytest.raises(ImageBuildFailed) as caught:
        await build_images(["broken"], bake_file=bake, local_bases=None)
    assert caught.value.code == "BUILD_FAILED"
    assert caught.value.target == "broken"
    assert "does-not-exist" in caught.value.logs


async def test_unreachable_engine_is_engine_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """No engine at DOCKER_HOST: EngineUnavailable (a ConnectionError), not an aiodocker error."""
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    with pytest.raises(EngineUnavailable) as caught:
        await build_images(["runner-go"], local_bases=None)
    assert caught.value.code == "ENGINE_UNAVAILABLE"
    assert isinstance(caught.value, ConnectionError)


def test_bake_default_version_is_the_package_version() -> None:
    """The bake file's VERSION default is the package's version (buildx users get it too)."""
    assert load_bake(BAKE)["runner-python"].labels["org.opencontainers.image.version"] == VERSION
