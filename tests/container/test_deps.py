"""``requirements=``: packages from the registry in a derived image, on the real engine.

The packages come from the registry this host reaches with its own pip/npm settings; without
it the tests skip. Requirements made unique per run (``attrs!=0.0.<run>``: same packages, a
new image) give builds that no earlier run cached; the images built here are removed at the
end.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from executor import CodeExecutor, CodeRun, ConfigError, ContainerExecutor, ImageBuildFailed
from executor.container.images import prune_files_images
from executor.engine.docker import DockerEngine

from ._support import pypi as pypi  # the registry check, shared with sessions and Ray
from ._support import reachable
from .conftest import NODE_IMAGE, PYTHON_IMAGE, config

pytestmark = pytest.mark.docker

UNIQUE = int(uuid.uuid4().hex[:6], 16)
MODES = [{}, {"mode": "pool", "containers": 1}, {"mode": "reuse"}, {"mode": "fork"}]
MODE_IDS = ["fresh", "pool", "reuse", "fork"]
_made: list[str] = []


@pytest.fixture(scope="module")
def npm_registry() -> None:
    """Skip unless this host's npm can reach its registry."""
    if (why := reachable(["npm", "view", "lodash@4", "version"])) is not None:
        pytest.skip(f"the npm registry cannot be reached from this host: {why}")


class _Built(logging.Handler):
    """Collects the tags of the images built in this process (the ``deps_build`` events)."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == "deps_build":
            _made.append(str(getattr(record, "image", "")))


@pytest.fixture(scope="module", autouse=True)
def remove_made_images() -> Any:
    """The images this module built go at the end (those no container uses)."""
    logger = logging.getLogger("executor.engine")
    handler, level = _Built(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        if _made:
            subprocess.run(["docker", "rmi", *set(_made)], capture_output=True, check=False)


def unique(name: str = "attrs") -> str:
    """A requirement resolving to ``name``'s latest release, spelled for this run only."""
    return f"{name}!=0.0.{UNIQUE}"


def image_id(tag: str) -> str:
    out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], capture_output=True)
    return out.stdout.decode().strip()


def deps_tags() -> set[str]:
    out = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "executor-deps/*"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def builds(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.image for r in caplog.records if getattr(r, "event", None) == "deps_build"]


async def run(executor: CodeExecutor, code: str) -> str:
    result = await executor.execute(CodeRun(code=code))
    assert result.exit_code == 0, result.stderr
    return result.stdout


async def test_pure_python_package_built_once_then_reused(
    pypi: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The first executor builds the image; a second one (fork mode) finds it: same image id
    on the engine, no build, no temporary tag left."""
    caplog.set_level(logging.INFO, "executor.engine")
    cfg = config(requirements=[unique()])
    async with CodeExecutor("python", cfg) as first:
        assert (await run(first, "import attrs; print(attrs.__name__)")).strip() == "attrs"
    [tag] = builds(caplog)
    built = image_id(tag)
    assert built
    caplog.clear()
    async with CodeExecutor("python", config(requirements=[unique()], mode="fork")) as second:
        assert "attrs" in await run(second, "import attrs; print(attrs.__name__)")
    assert builds(caplog) == []
    assert image_id(tag) == built
    assert not [t for t in deps_tags() if ":building-" in t]


async def test_concurrent_first_uses_in_one_process_build_once(
    pypi: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Three executors starting at once on new requirements make one build (single flight)."""
    caplog.set_level(logging.INFO, "executor.engine")
    requirement = f"attrs!=0.2.{UNIQUE}"
    executors = [CodeExecutor("python", config(requirements=[requirement])) for _ in range(3)]
    try:
        async with anyio.create_task_group() as tg:
            for ex in executors:
                tg.start_soon(run, ex, "import attrs")
    finally:
        for ex in executors:
            await ex.aclose()
    assert len(builds(caplog)) == 1


async def test_probe_answer_is_cached_per_base_image_in_process_and_on_disk(
    pypi: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Builds on the same base image probe it once: a second build takes the answer from the
    process, a third (the process's memory cleared) from the file under the user's cache dir."""
    from executor.container import deps

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(deps, "_probes", {})
    caplog.set_level(logging.DEBUG, "executor.engine")
    answers = []
    for n in range(3):
        if n == 2:
            deps._probes.clear()
        caplog.clear()
        async with CodeExecutor("python", config(requirements=[f"attrs!=0.3{n}.{UNIQUE}"])) as ex:
            assert "attrs" in await run(ex, "import attrs; print(attrs.__name__)")
        [probe] = [r for r in caplog.records if getattr(r, "event", None) == "deps_probe"]
        answers.append(probe.cached)
    assert answers == [None, "memory", "disk"]
    assert len(list((tmp_path / "executor" / "probes").glob("*.json"))) == 1


async def test_wheel_with_data_directory_is_laid_out_like_pip(
    pypi: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A wheel whose module sits in ``<dist>.data/purelib`` (offered by a find-links directory
    in the host's pip environment) is importable from the site directory, as pip lays it out."""
    import zipfile

    links = tmp_path / "links"
    links.mkdir()
    dist = "executor_datawheel-1.0"
    with zipfile.ZipFile(links / f"{dist}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{dist}.data/purelib/executor_datawheel.py", "ANSWER = 42\n")
        wheel.writestr(
            f"{dist}.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: executor-datawheel\nVersion: 1.0\n",
        )
        wheel.writestr(
            f"{dist}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{dist}.dist-info/RECORD", "")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    cfg = config(requirements=[f"executor-datawheel!=0.0.{UNIQUE}"])
    async with CodeExecutor("python", cfg) as ex:
        code = "import executor_datawheel as m, importlib.metadata as md; "
        code += "print(m.ANSWER, md.version('executor-datawheel'))"
        assert (await run(ex, code)).split() == ["42", "1.0"]


async def test_pure_python_sdist_is_built_into_a_wheel_on_the_host(pypi: None) -> None:
    """A pure-Python package published only as an sdist (docopt 0.6.2) is built into a wheel
    on the host and installed."""
    cfg = config(requirements=[f"docopt!=0.0.{UNIQUE}"])
    async with CodeExecutor("python", cfg) as ex:
        assert (await run(ex, "import docopt; print(docopt.__version__)")).strip() == "0.6.2"


async def test_build_is_bounded_by_build_timeout_not_start_timeout(pypi: None) -> None:
    """The first call waits for the build under build_timeout; start_timeout (here shorter
    than a build) starts counting once the image is there."""
    cfg = config(requirements=[f"attrs!=0.3.{UNIQUE}"], start_timeout=1.5)
    async with CodeExecutor("python", cfg) as ex:
        assert "ok" in await run(ex, "import attrs; print('ok')")


async def test_build_timeout_stops_the_build_and_tags_nothing(pypi: None) -> None:
    """A build past build_timeout is ImageBuildFailed saying so; nothing is tagged and no
    container is left (the run's leftover check)."""
    before = deps_tags()
    cfg = config(requirements=[f"numpy!=0.4.{UNIQUE}"], build_timeout=0.3)
    async with CodeExecutor("python", cfg) as ex:
        with pytest.raises(ImageBuildFailed, match="build_timeout"):
            await ex.execute(CodeRun(code="print(1)"))
    assert deps_tags() <= before


async def test_numpy_binary_wheel_in_fresh_and_fork_mode(pypi: None) -> None:
    """numpy's binary wheel for the image's platform imports and computes, in fresh and fork
    containers alike."""
    code = "import numpy; print(int(numpy.arange(10).sum()))"
    for extra in ({}, {"mode": "fork"}):
        async with CodeExecutor("python", config(requirements=["numpy"], **extra)) as ex:
            assert (await run(ex, code)).strip() == "45"


async def test_task_container_has_no_network(pypi: None) -> None:
    """The packages are in the image, and the task's container still has no network."""
    code = (
        "import attrs, socket\n"
        "try:\n"
        "    socket.create_connection(('pypi.org', 443), timeout=3)\n"
        "    print('connected')\n"
        "except OSError as exc:\n"
        "    print('offline', type(exc).__name__)\n"
    )
    async with CodeExecutor("python", config(requirements=["attrs"])) as ex:
        assert (await run(ex, code)).startswith("offline")


async def test_python_requirements_file(pypi: None, tmp_path: Path) -> None:
    """requirements_file takes a requirements.txt (comments and options included)."""
    req = tmp_path / "requirements.txt"
    req.write_text(f"# for the test\n{unique('attrs')}  # pure Python\n")
    async with CodeExecutor("python", config(requirements_file=str(req))) as ex:
        assert "ok" in await run(ex, "import attrs; print('ok')")


async def test_python_requirements_file_with_include(pypi: None, tmp_path: Path) -> None:
    """A requirements.txt including another with -r (relative to it) installs what the
    included file lists."""
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "base.txt").write_text(f"{unique('attrs')}\n")
    req = tmp_path / "reqs" / "requirements.txt"
    req.write_text("-r base.txt\n")
    async with CodeExecutor("python", config(requirements_file=str(req))) as ex:
        assert "ok" in await run(ex, "import attrs; print('ok')")


async def test_unresolvable_requirement_names_it(pypi: None) -> None:
    """A version that does not exist is ImageBuildFailed naming the requirement and quoting
    pip; no image is tagged and no container is left."""
    before = deps_tags()
    async with CodeExecutor("python", config(requirements=["attrs==0.0.1"])) as ex:
        with pytest.raises(ImageBuildFailed) as caught:
            await ex.execute(CodeRun(code="print(1)"))
    assert "attrs==0.0.1" in caught.value.message
    assert "No matching distribution" in caught.value.message
    assert deps_tags() <= before


async def test_no_wheel_for_the_platform(pypi: None) -> None:
    """A package published only for another platform (pywin32: Windows wheels, no source)
    is ImageBuildFailed naming it, with the image's Python and platform."""
    async with CodeExecutor("python", config(requirements=["pywin32"])) as ex:
        with pytest.raises(ImageBuildFailed) as caught:
            await ex.execute(CodeRun(code="print(1)"))
    assert "pywin32" in caught.value.message
    assert "manylinux" in caught.value.message


def test_malformed_requirement_before_anything_runs() -> None:
    """A malformed requirement is ConfigError when the executor is made."""
    with pytest.raises(ConfigError):
        CodeExecutor("python", config(requirements=["numpy>=>2"]))


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
async def test_npm_package_in_node_task(npm_registry: None, mode: dict[str, Any]) -> None:
    """An npm package is importable from a Node program in every mode."""
    code = "import _ from 'lodash'; console.log(_.chunk([1, 2, 3, 4], 2).length)"
    async with CodeExecutor("node", config(NODE_IMAGE, requirements=["lodash@4"], **mode)) as ex:
        for _ in range(2):
            assert (await run(ex, code)).strip() == "2"


async def test_unresolvable_npm_spec_names_it(npm_registry: None) -> None:
    """A version npm cannot find is ImageBuildFailed naming the spec (without the period
    ending npm's sentence) and quoting npm; no image is tagged."""
    before = deps_tags()
    async with CodeExecutor("node", config(NODE_IMAGE, requirements=["lodash@99.99.99"])) as ex:
        with pytest.raises(ImageBuildFailed) as caught:
            await ex.execute(CodeRun(code="console.log(1)"))
    assert caught.value.message.startswith("cannot install 'lodash@99.99.99' into")
    assert "No matching version found" in caught.value.message
    assert deps_tags() <= before


async def test_node_requirements_file_with_lock(npm_registry: None, tmp_path: Path) -> None:
    """requirements_file takes a package.json; its package-lock.json is installed with npm ci."""
    manifest = {"name": f"deps-test-{UNIQUE}", "private": True, "dependencies": {"ms": "^2.1.3"}}
    (tmp_path / "package.json").write_text(json.dumps(manifest))
    subprocess.run(
        ["npm", "install", "--package-lock-only", "--ignore-scripts"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "package-lock.json").is_file()
    cfg = config(NODE_IMAGE, requirements_file=str(tmp_path / "package.json"))
    async with CodeExecutor("node", cfg) as ex:
        assert (await run(ex, "const ms = require('ms'); console.log(ms('2s'))")).strip() == "2000"


def _scripted_package(tmp_path: Path) -> Path:
    """A tiny npm package whose postinstall script leaves a file next to itself."""
    source = tmp_path / "src"
    source.mkdir()
    name = f"executor-scripted-{UNIQUE}"
    manifest = {
        "name": name,
        "version": "1.0.0",
        "main": "index.js",
        "scripts": {"postinstall": "node -e \"require('fs').writeFileSync('ran.txt', 'x')\""},
    }
    (source / "package.json").write_text(json.dumps(manifest))
    (source / "index.js").write_text("module.exports = 42;\n")
    subprocess.run(
        ["npm", "pack", "--pack-destination", str(tmp_path)],
        cwd=source,
        check=True,
        capture_output=True,
    )
    return tmp_path / f"{name}-1.0.0.tgz"


async def test_npm_install_scripts_do_not_run(tmp_path: Path) -> None:
    """A package's postinstall script does not run unless allow_install_scripts=True."""
    tarball = _scripted_package(tmp_path)
    name = f"executor-scripted-{UNIQUE}"
    code = (
        f"const fs = require('fs'); console.log(require('{name}'), "
        f"fs.existsSync('/node_modules/{name}/ran.txt'))"
    )
    for allowed, expected in ((False, "42 false"), (True, "42 true")):
        cfg = config(NODE_IMAGE, requirements=[str(tarball)], allow_install_scripts=allowed)
        async with CodeExecutor("node", cfg) as ex:
            assert (await run(ex, code)).strip() == expected


def test_two_processes_racing_make_one_image(pypi: None) -> None:
    """Two processes building the same new requirements at once both succeed with the same
    tag; one image carries it and no temporary tag is left."""
    requirement = f"attrs!=0.1.{UNIQUE}"
    command = [sys.executable, "-m", "executor", "images", "deps", requirement]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    racers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    outputs = [racer.communicate(timeout=280) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], outputs
    tags = {out.decode().strip() for out, _ in outputs}
    assert len(tags) == 1
    [tag] = tags
    _made.append(tag)
    assert image_id(tag)
    assert not [t for t in deps_tags() if ":building-" in t]


TASK = """
import attrs  # imported once per container in fork and reuse modes


def execute(input):
    return {"n": input["n"] + 1, "attrs": attrs.__name__}
"""


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
async def test_every_mode_runs_a_task_module_on_the_image(pypi: None, mode: dict[str, Any]) -> None:
    """A task module importing a requirement at the top, placed with files (a files image
    derived from the dependencies image), runs in every mode."""
    cfg = config(requirements=["attrs"], files={"/app/execute.py": TASK}, **mode)
    async with ContainerExecutor(cfg) as ex:
        for n in range(2):
            assert await ex.execute({"n": n}) == {"n": n + 1, "attrs": "attrs"}


def test_cli_builds_lists_and_prunes_a_dependencies_image(pypi: None) -> None:
    """``images deps`` prints the tag (the runner told from the entrypoint of an image whose
    name does not say), ``images list`` shows its requirements, ``images prune --base``
    removes it."""
    base = f"executor-test/deps-{UNIQUE}:latest"
    subprocess.run(["docker", "image", "tag", PYTHON_IMAGE, base], check=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "executor", "images", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=280,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        # Unique requirements: an image derived from the same image id under another name
        # would be found, labelled with that name.
        requirement = f"attrs!=0.6.{UNIQUE}"
        tag = cli("deps", requirement, "--image", base).strip()
        assert tag.startswith("executor-deps/python-")
        rows = [json.loads(line) for line in cli("list", "--json").splitlines()]
        [row] = [r for r in rows if f"{r['repository']}:latest" == tag]
        assert row["requirements"] == requirement
        assert tag in cli("prune", "--base", base)
        assert not image_id(tag)
    finally:
        subprocess.run(["docker", "rmi", base], capture_output=True, check=False)


async def test_prune_keeps_a_dependencies_image_in_use(pypi: None) -> None:
    """prune leaves a dependencies image an idle pooled container uses (never forced)."""
    base = f"executor-test/deps-used-{UNIQUE}:latest"
    subprocess.run(["docker", "image", "tag", PYTHON_IMAGE, base], check=True)
    engine = DockerEngine()
    try:
        cfg = config(
            base, requirements=[f"attrs!=0.5.{UNIQUE}"], mode="pool", containers=1, prewarm=True
        )
        async with CodeExecutor("python", cfg) as ex:
            await run(ex, "import attrs")
            found = [image async for image in prune_files_images(engine, base=base)]
            assert [image.removed for image in found] == [False]
        found = [image async for image in prune_files_images(engine, base=base)]
        assert [image.removed for image in found] == [True]
    finally:
        await engine.aclose()
        subprocess.run(["docker", "rmi", base], capture_output=True, check=False)
