"""Dependencies as a derived image: fetched and installed on the host, made once per engine.

``ContainerConfig(requirements=[...])`` runs its tasks in ``executor-deps/<runner>-<hash>:latest``,
the configured image plus the installed packages, where the hash covers the base image's id
and platform, the normalised requirements (a local file by content), the host installer's
version and ``allow_install_scripts``. A cache hit costs two image inspections.

On a miss (:func:`deps_image`), the packages are fetched on the host with the host's own
installer configuration (pip's and npm's config files and environment: index URLs, find-links,
certificate bundle, proxy), for the image's platform: a probe container (no network) reports
the image's Python version, machine, C library and site directory, then ``pip download
--only-binary=:all: --platform ... --python-version ...`` fetches wheels (a pure-Python sdist
is built into a wheel with ``pip wheel``) and the wheels are unpacked where ``pip install
--target`` would put them; Node packages are installed with ``npm install``/``npm ci
--ignore-scripts`` into a staging directory. The engine only receives files: the image is
derived like a ``files`` image (:meth:`executor.engine.Images.derive`), so it needs neither
pip nor npm in the image nor the network on the engine (the runner images have neither).
Python packages go into the image's first site directory (byte-compiled by the host when its
Python version is the image's), Node packages into ``/node_modules`` (found from any
directory by ``require`` and ``import``).

The probe's answer is kept per base image id, in the process and in the user's cache directory
(``~/.cache/executor/probes``): an id's contents never change.

The image is committed under a temporary tag, then tagged: nothing half-made carries the
final tag. Concurrent first uses in one process build once (single flight per engine and
tag); two processes racing both build, the last tag wins and the other image goes with its
temporary tag. Errors: :class:`ImageBuildFailed` naming the requirement and quoting the
installer (unresolvable, no wheel for the platform, ``build_timeout`` passed),
:class:`ConfigError` when the host lacks the installer or the image's runner is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio

from .._errors import ConfigError, ImageBuildFailed
from .._observe import DEBUG, ENGINE, INFO, event
from ..engine import cleanup
from .config import create_body
from .lifecycle import kill, launch
from .requirements import deps_key, normalized, runner_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from anyio.abc import Process

    from ..engine import Engine
    from .config import ContainerConfig

__all__ = ["DEPS_LABEL", "DEPS_OF_LABEL", "DEPS_REPOSITORY", "deps_image", "installer_version"]

#: The repository of derived dependency images, the label naming their base image, and the
#: label holding their requirements (JSON: runner, requirements, file).
DEPS_REPOSITORY = "executor-deps"
DEPS_OF_LABEL = "executor.deps-of"
DEPS_LABEL = "executor.deps"

_LOG_TAIL = 40
#: What the probe container prints: the image's Python, as the installer needs it.
_PROBE = (
    "import json, platform, site, sys, sysconfig\n"
    "dirs = getattr(site, 'getsitepackages', lambda: [])() or [sysconfig.get_path('purelib')]\n"
    "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
    "'implementation': sys.implementation.name, 'machine': platform.machine(), "
    "'libc': list(platform.libc_ver()), 'site': dirs[0]}))"
)
_flights: dict[tuple[int, str, str], anyio.Lock] = {}
#: Probe answers by base image id (an id's contents never change), also kept on disk.
_probes: dict[str, dict[str, Any]] = {}


class _Spec(NamedTuple):
    runner: str
    requirements: list[str]
    file: Path | None
    scripts: bool


@functools.cache
def _pip() -> list[str]:
    """The host's pip: this interpreter's, else the one on PATH."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        if found := shutil.which(name):
            return [found]
    raise ConfigError(
        "ContainerConfig.requirements: pip is not installed on this host; Python requirements "
        "are fetched with the host's pip (`python -m ensurepip` installs it)"
    )


@functools.cache
def _npm() -> str:
    found = shutil.which("npm")
    if found is None:
        raise ConfigError(
            "ContainerConfig.requirements: npm is not installed on this host; Node requirements "
            "are fetched with the host's npm"
        )
    return found


@functools.cache
def installer_version(runner: str) -> str:
    """``pip X`` or ``npm X``: the host installer's version, asked once per process."""
    if runner == "python":
        if _pip()[0] == sys.executable:
            from importlib.metadata import version

            return f"pip {version('pip')}"
        command = [*_pip(), "--version"]
    else:
        npm = Path(_npm()).resolve()  # .../npm/bin/npm-cli.js: its package.json says
        for parent in npm.parents[:3]:
            if (manifest := parent / "package.json").is_file():
                data = json.loads(manifest.read_text())
                if data.get("name") == "npm":
                    return f"npm {data.get('version')}"
        command = [str(npm), "--version"]
    out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    return f"{runner} {out.stdout.strip()}"


def _spec(config: ContainerConfig, runner: str) -> _Spec:
    file = Path(config.requirements_file).resolve() if config.requirements_file else None
    return _Spec(
        runner,
        normalized(runner, config.requirements),
        file,
        config.allow_install_scripts,
    )


def _runner_from(image: str, info: Mapping[str, Any]) -> str:
    runner = runner_of(image)
    if runner is None:
        cfg = info.get("Config") or {}
        words = " ".join([*(cfg.get("Entrypoint") or []), *(cfg.get("Cmd") or [])])
        for name, marks in (("python", ("python",)), ("node", ("node", "run.sh"))):
            if any(mark in words for mark in marks):
                runner = name
                break
    if runner is None:
        raise ConfigError(
            f"ContainerConfig.requirements: cannot tell whether {image} runs Python or Node "
            "(neither its name nor its entrypoint says); name it after its runner "
            "(e.g. myorg/runner-python) to install requirements into it"
        )
    if runner == "go":
        raise ConfigError("ContainerConfig.requirements cannot be used with a Go image")
    return runner


async def deps_image(
    engine: Engine, config: ContainerConfig, image: str, labels: Mapping[str, str]
) -> str:
    """The tag of ``image`` plus ``config``'s requirements on ``engine``, made if missing.

    ``image`` must exist on the engine; ``labels`` go on the probe container (the executor's,
    so that ``reap`` finds it after a crash).
    """
    images = engine.images
    info = await images.inspect(image)
    if info is None:  # removed since it was checked: the caller's stale path handles it
        from .._errors import ImageNotFound

        raise ImageNotFound(image, engine=engine.name)
    runner = _runner_from(image, info)
    spec = _spec(config, runner)
    installer = await anyio.to_thread.run_sync(installer_version, runner)
    platform = f"{info.get('Os', '')}/{info.get('Architecture', '')}"
    key = await anyio.to_thread.run_sync(
        lambda: deps_key(
            runner,
            str(info.get("Id")),
            platform,
            installer,
            spec.requirements,
            spec.file,
            spec.scripts,
        )
    )
    tag = f"{DEPS_REPOSITORY}/{runner}-{key}:latest"
    if await images.exists(tag):
        return tag
    flight = (id(asyncio.get_running_loop()), engine.name, tag)
    lock = _flights.setdefault(flight, anyio.Lock())
    async with lock:
        if not await images.exists(tag):
            await _build(engine, config, image, str(info.get("Id")), spec, tag, labels)
    return tag


async def _build(
    engine: Engine,
    config: ContainerConfig,
    image: str,
    image_id: str,
    spec: _Spec,
    tag: str,
    labels: Mapping[str, str],
) -> None:
    what = ", ".join(spec.requirements) or str(spec.file)
    event(ENGINE, INFO, "deps_build", "building %s for %s: %s", tag, image, what, image=tag)
    temp = f"{tag.rpartition(':')[0]}:building-{os.getpid()}-{secrets.token_hex(4)}"
    repository = tag.rpartition(":")[0]
    try:
        with anyio.fail_after(config.build_timeout):
            work = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp, None, "executor-deps-"))
            try:
                async with contextlib.AsyncExitStack() as stack:
                    await _derive(engine, config, image, image_id, spec, work, temp, labels, stack)
                if not await engine.images.exists(tag):
                    await engine.images.tag(temp, repository, "latest")
            finally:
                # Off the call's path (seconds for numpy on a busy machine); not a daemon, so
                # the interpreter waits for it at exit.
                threading.Thread(
                    target=shutil.rmtree, args=(work,), kwargs={"ignore_errors": True}
                ).start()
    except TimeoutError:
        raise ImageBuildFailed(
            f"building {tag} ({what}) took longer than build_timeout="
            f"{config.build_timeout:g} s; nothing was tagged. Raise build_timeout, or build it "
            "ahead with `executor images deps`",
            target=tag,
        ) from None
    finally:
        # The image keeps its final tag; a process that lost the race loses its image here.
        await cleanup(engine.images.remove, temp)
    event(ENGINE, INFO, "deps_built", "built %s for %s", tag, image, image=tag)


async def _derive(
    engine: Engine,
    config: ContainerConfig,
    image: str,
    image_id: str,
    spec: _Spec,
    work: Path,
    temp: str,
    labels: Mapping[str, str],
    stack: contextlib.AsyncExitStack,
) -> None:
    """Install into ``work`` and commit ``image`` plus the installed files as ``temp``."""
    later = None
    if spec.runner == "python":
        probe = await _probed(engine, config, image, image_id, labels)
        files, later = await _python_files(spec, probe, work, image, stack)
    else:
        files = await _node_files(spec, work, image)
    label = json.dumps(
        {
            "runner": spec.runner,
            "requirements": spec.requirements,
            "file": str(spec.file) if spec.file else None,
        }
    )
    await engine.images.derive(image, files, temp, {DEPS_OF_LABEL: image, DEPS_LABEL: label}, later)


def _probe_file(image_id: str) -> Path:
    """Where the probe's answer for an image id is kept: the user's cache directory."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "executor" / "probes" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', image_id)}.json"


def _read_probe(image_id: str) -> dict[str, Any] | None:
    try:
        found = json.loads(_probe_file(image_id).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and "version" in found else None


def _write_probe(image_id: str, found: Mapping[str, Any]) -> None:
    """Atomically (a reader never sees half a file); a cache that cannot be written is none."""
    path = _probe_file(image_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}")
        temp.write_text(json.dumps(found))
        os.replace(temp, path)
    except OSError:
        pass


async def _probed(
    engine: Engine,
    config: ContainerConfig,
    image: str,
    image_id: str,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    """The probe's answer for ``image``: remembered in this process, else on disk, else asked."""
    cached: str | None = "memory"
    if (found := _probes.get(image_id)) is None:
        cached = "disk"
        if (found := await anyio.to_thread.run_sync(_read_probe, image_id)) is None:
            cached = None
            found = await _probe(engine, config, image, labels)
            await anyio.to_thread.run_sync(_write_probe, image_id, found)
        _probes[image_id] = found
    how = f"cached ({cached})" if cached else "probed"
    event(
        ENGINE,
        DEBUG,
        "deps_probe",
        "%s: Python %s, %s",
        image,
        found.get("version"),
        how,
        image=image,
        cached=cached,
    )
    return found


async def _probe(
    engine: Engine, config: ContainerConfig, image: str, labels: Mapping[str, str]
) -> dict[str, Any]:
    """Ask the image (in a locked-down container, no network) about its Python."""
    body = create_body(config, image, labels)
    body.update(Entrypoint=["python3", "-c", _PROBE], Cmd=[], Env=[])
    container = await launch(engine, body)
    out, err = bytearray(), bytearray()
    try:
        container.attachment.close_stdin()
        while (frame := await container.attachment.read()) is not None:
            (out if frame[0] == 1 else err).extend(frame[1])
    finally:
        await kill(container)
    try:
        found = json.loads(out.decode())
        if not isinstance(found, dict):
            raise ValueError(found)
    except ValueError:
        raise ImageBuildFailed(
            f"cannot install Python requirements into {image}: `python3` in it did not say "
            f"its version and platform ({(bytes(err) or bytes(out)).decode(errors='replace')})",
            target=image,
            logs=bytes(err).decode(errors="replace"),
        ) from None
    return found


def _platforms(probe: Mapping[str, Any]) -> list[str]:
    """pip's platform tags for the image (manylinux/musllinux down to the oldest)."""
    machine = str(probe.get("machine") or "x86_64")
    libc, version = [*list(probe.get("libc") or []), "", ""][:2]
    numbers = [int(n) for n in re.findall(r"\d+", str(version))[:2]]
    if libc == "glibc" and len(numbers) == 2:
        tags = [f"manylinux_2_{minor}_{machine}" for minor in range(numbers[1], 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{name}_{machine}" for minor, name in legacy.items() if minor <= numbers[1]]
        return tags
    # No glibc: musl (Alpine) reports nothing here; its wheels are musllinux.
    return [f"musllinux_1_{minor}_{machine}" for minor in range(2, -1, -1)]


async def _run(command: Sequence[str], cwd: Path | None = None) -> tuple[int, str]:
    """Run a host installer; its exit status and output (stderr and stdout together)."""
    env = {**os.environ, "PIP_NO_INPUT": "1", "npm_config_update_notifier": "false"}
    done = await anyio.run_process(
        list(command), check=False, cwd=cwd, env=env, stderr=subprocess.STDOUT
    )
    return done.returncode, done.stdout.decode(errors="replace")


def _failure(
    output: str, spec: _Spec, image: str, tag_hint: str, extra: str = ""
) -> ImageBuildFailed:
    """The installer's failure, naming the requirement it names (else all of them)."""
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [
        re.sub(r"\(from versions: ([^)]{120})[^)]+\)", r"(from versions: \1...)", line.strip())
        for line in lines
        if re.match(r"\s*(ERROR|npm (ERR|error))", line) and "yanked" not in line
    ]
    quoted = " ".join(errors[-3:]) or (lines[-1] if lines else "")
    match = re.search(r"(?:requirement|distribution found for|for) ([^\s(]+)", " ".join(errors))
    # npm ends its sentence after the spec: "No matching version found for lodash@99.99.99."
    named = match.group(1).rstrip(".,;:") if match else ""
    named = named or ", ".join(spec.requirements) or str(spec.file)
    return ImageBuildFailed(
        f"cannot install {named!r} into {image}{extra}: {quoted}",
        target=tag_hint,
        logs="\n".join(deque(lines, maxlen=_LOG_TAIL)),
    )


async def _python_files(
    spec: _Spec,
    probe: Mapping[str, Any],
    work: Path,
    image: str,
    stack: contextlib.AsyncExitStack,
) -> tuple[dict[str, bytes], Callable[[], Awaitable[dict[str, bytes]]] | None]:
    """The installed files, and (when the host can make it) the byte-code still being
    compiled: the engine copies the files in meanwhile. ``stack`` stops the compiler."""
    wheels, built, target = work / "wheels", work / "built", work / "site"
    version = str(probe.get("version"))
    platforms = _platforms(probe)
    wanted = ["-r", str(spec.file)] if spec.file else list(spec.requirements)
    target_flags = [
        "--only-binary=:all:",
        *[f"--platform={p}" for p in platforms],
        f"--python-version={version}",
        "--implementation=cp" if probe.get("implementation") == "cpython" else "",
    ]
    target_flags = [f for f in target_flags if f]
    pip = _pip()
    extra = f" (Python {version}, {platforms[0] if platforms else '?'})"
    # A pure-Python package published only as an sdist is built into a wheel here (on the
    # host), then offered to the download again; one with compiled parts cannot be.
    links: list[str] = []
    for _ in range(len(spec.requirements) + 10):
        download = [*pip, "download", "--dest", str(wheels), "--progress-bar=off", *links]
        code, output = await _run([*download, *target_flags, *wanted])
        if code == 0:
            break
        match = re.search(r"satisfies the requirement (\S+)", output)
        if match is None or "from versions: none" not in output:
            raise _failure(output, spec, image, image, extra)
        name = match.group(1)
        code, wheel_output = await _run(
            [*pip, "wheel", "--no-deps", "--wheel-dir", str(built), "--progress-bar=off", name]
        )
        if code != 0 and "satisfies the requirement" in wheel_output:
            raise _failure(output, spec, image, image, extra)  # no such package or version
        pure = [p for p in built.glob("*.whl") if p.name.endswith("-none-any.whl")]
        if code != 0 or not any(_wheel_name(p.name) == _wheel_name(name) for p in pure):
            raise _failure(
                output,
                spec,
                image,
                image,
                f"{extra}: no wheel for the image's platform, and its source does not build "
                "into a pure-Python one",
            )
        links = [f"--find-links={built}"]
    else:
        raise _failure(output, spec, image, image, extra)
    # The download resolved the set; installing it is unpacking each wheel (as ``pip install
    # --target`` does, without a second resolution and pip's start: a second of numpy's 5).
    await anyio.to_thread.run_sync(_unpack, _downloaded(output, wheels), target)
    site = str(probe.get("site") or "/usr/local/lib/python3/dist-packages")
    later = None
    if version == "{}.{}".format(*sys.version_info[:2]) and sys.implementation.name == "cpython":
        # The image's root filesystem is read-only: byte-code it cannot write must be here,
        # valid whatever the files' times (the derived image's are all zero).
        # Test suites shipped inside packages (numpy's are a third of it) are left out.
        compileall = [sys.executable, "-m", "compileall", "-q", "-j0", "-x", r"/tests?/"]
        compiler = await anyio.open_process(
            [*compileall, "--invalidation-mode=unchecked-hash", str(target)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its workers too are stopped with it
        )
        stack.push_async_callback(_stop, compiler)

        async def later() -> dict[str, bytes]:
            await compiler.wait()
            return await anyio.to_thread.run_sync(_collect, target, site, {"bin"}, True)

    # Byte-code is not collected here: the compiler is writing it.
    return await anyio.to_thread.run_sync(_collect, target, site, {"bin"}, False), later


async def _stop(process: Process) -> None:
    with anyio.CancelScope(shield=True):
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


def _downloaded(output: str, wheels: Path) -> list[Path]:
    """The wheels ``pip download`` says it saved or found (else all in ``wheels``)."""
    said = re.findall(r"^\s*(?:Saved|File was already downloaded) (\S+\.whl)\s*$", output, re.M)
    found = [wheels / Path(p).name for p in said if (wheels / Path(p).name).is_file()]
    return sorted(set(found)) or sorted(wheels.glob("*.whl"))


def _unpack(wheels: Sequence[Path], target: Path) -> None:
    """Install wheels into ``target`` as ``pip install --target`` lays them out: the archive
    at the top, a ``<dist>.data``'s purelib and platlib merged into it; its scripts, headers
    and data left out (nothing in the image would find them)."""
    target.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target)  # zipfile drops absolute and ``..`` parts
    for data in target.glob("*.data"):
        for scheme in ("purelib", "platlib"):
            if (data / scheme).is_dir():
                shutil.copytree(data / scheme, target, dirs_exist_ok=True)
        shutil.rmtree(data)


def _wheel_name(name: str) -> str:
    """A distribution's name as wheel file names spell it."""
    head = re.split(r"[\s\[<>=!~;@-]", name.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "_", head).lower()


async def _node_files(spec: _Spec, work: Path, image: str) -> dict[str, bytes]:
    stage = work / "stage"
    stage.mkdir()
    npm = _npm()
    flags = ["--prefix", str(stage), "--omit=dev", "--no-audit", "--no-fund"]
    if not spec.scripts:
        flags.append("--ignore-scripts")
    if spec.file is not None:
        shutil.copy(spec.file, stage / "package.json")
        lock = spec.file.with_name("package-lock.json")
        if lock.is_file():
            shutil.copy(lock, stage / "package-lock.json")
        command = [npm, "ci" if lock.is_file() else "install", *flags]
    else:
        (stage / "package.json").write_text('{"name": "executor-deps", "private": true}\n')
        command = [npm, "install", *flags, *spec.requirements]
    code, output = await _run(command, cwd=stage)
    if code != 0:
        raise _failure(output, spec, image, image)
    modules = stage / "node_modules"
    return await anyio.to_thread.run_sync(_collect, modules, "/node_modules", {".bin"})


def _collect(
    root: Path, into: str, skip: set[str], byte_code: bool | None = None
) -> dict[str, bytes]:
    """Every regular file under ``root`` (symlinked files by content), keyed by its path
    under ``into``; top-level directories in ``skip`` (scripts for the host's paths) left out;
    with ``byte_code`` True only what is in ``__pycache__`` directories, with False none of it."""
    files: dict[str, bytes] = {}
    if not root.is_dir():
        return files
    for directory, dirs, names in os.walk(root):
        here = Path(directory)
        top = here == root
        dirs[:] = [d for d in dirs if not (top and d in skip) and not (here / d).is_symlink()]
        if byte_code is not None and (here.name == "__pycache__") != byte_code:
            if byte_code is False:
                dirs[:] = []
            continue
        for name in names:
            path = here / name
            if path.is_file():
                relative = path.relative_to(root).as_posix()
                files[f"{into.rstrip('/')}/{relative}"] = path.read_bytes()
    return files
