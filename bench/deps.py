"""What ``requirements=["numpy"]`` costs: first use, cache hit, and a plain ``docker build``.

Run: ``.venv/bin/python bench/deps.py [--rounds N] [--hits N]`` (engine, runner images, and a
package registry this host reaches with its pip settings).

Rows (milliseconds, one process, the same machine):

* first use: a new ``CodeExecutor("python", ContainerConfig(..., requirements=[R]))`` up to
  the answer of ``import numpy``, R spelled for this round only (``numpy!=0.0.<random>``: the
  same packages, an image no earlier round cached): probe (or its cached answer), ``pip
  download``, unpacking the wheels, byte-compiling, commit, then the call;
* cache hit: the same with the image present, next to the same executor without requirements
  running ``print(1)`` (their difference is what the requirements add to a start, plus the
  import of numpy), and ``deps_image()`` alone (the lookup a hit adds: the base image's
  inspection, the key, the tag's inspection);
* plain ``docker build``: ``pip download`` of the same wheels on the host, then ``docker build
  --no-cache`` of ``FROM <runner image>`` + ``COPY`` the wheels + ``RUN python3 -m zipfile
  -e`` each into the site directory and byte-compile it, as ``pip install`` does (the runner
  image has no pip, and a container here cannot reach the registry over TLS, so ``RUN pip
  install numpy`` cannot be the comparison).

First uses and plain builds alternate, ``--rounds`` of each (which goes first alternates too),
so that both see the same load; the table gives their p50 and max side by side.

Everything the benchmark builds is removed at the end.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_LABEL, PYTHON_IMAGE, bench_leftovers, machine, summary, table

from executor import CodeExecutor, CodeRun, ContainerConfig
from executor.container.deps import deps_image
from executor.engine.docker import DockerEngine

BUILT_TAG = "executor-bench/deps-dockerfile:latest"
SITE = "/usr/local/lib/python3.11/dist-packages"


async def first_call(config: ContainerConfig, code: str) -> float:
    t0 = time.perf_counter()
    async with CodeExecutor("python", config) as ex:
        result = await ex.execute(CodeRun(code))
        assert result.exit_code == 0, result.stderr
    return time.perf_counter() - t0


def plain_docker_build(requirement: str) -> tuple[float, float]:
    """Seconds for ``pip download`` on the host, and for ``docker build --no-cache``."""
    work = Path(tempfile.mkdtemp(prefix="bench-deps-"))
    try:
        t0 = time.perf_counter()
        pip = [sys.executable, "-m", "pip", "download", "-q", "--dest", str(work / "wheels")]
        target = ["--only-binary=:all:", "--platform=manylinux2014_x86_64"]
        target += ["--python-version=3.11", "--implementation=cp"]
        subprocess.run([*pip, *target, requirement], check=True, capture_output=True)
        t1 = time.perf_counter()
        (work / "Dockerfile").write_text(
            f"FROM {PYTHON_IMAGE}\nCOPY wheels /wheels\nUSER root\n"
            f"RUN for w in /wheels/*.whl; do python3 -m zipfile -e $w {SITE}; done \\\n"
            f" && python3 -m compileall -q -j0 {SITE}\n"
            "USER 1000:1000\n"
        )
        build = ["docker", "build", "--no-cache", "-q", "--label", f"{BENCH_LABEL}=1"]
        subprocess.run([*build, "-t", BUILT_TAG, str(work)], check=True, capture_output=True)
        return t1 - t0, time.perf_counter() - t1
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def main(rounds: int, hits: int) -> None:
    code = "import numpy; print(numpy.arange(10).sum())"
    labels = {BENCH_LABEL: "deps"}  # other benchmarks may run meanwhile
    plain = ContainerConfig(PYTHON_IMAGE, labels=labels)
    engine = DockerEngine()
    tags: list[str] = []
    first, download, build = [], [], []
    try:
        for n in range(rounds):
            requirement = f"numpy!=0.0.{random.randrange(1 << 30)}"
            with_deps = ContainerConfig(PYTHON_IMAGE, requirements=[requirement], labels=labels)
            for what in ("first", "plain") if n % 2 == 0 else ("plain", "first"):
                if what == "first":
                    first.append(await first_call(with_deps, code))
                    tags.append(await deps_image(engine, with_deps, PYTHON_IMAGE, labels))
                else:
                    d, b = plain_docker_build(requirement)
                    await engine.images.remove(BUILT_TAG)
                    download.append(d)
                    build.append(b)
        hit, base, lookup = [], [], []
        for _ in range(hits):
            base.append(await first_call(plain, "print(1)"))
            hit.append(await first_call(with_deps, code))
            t0 = time.perf_counter()
            await deps_image(engine, with_deps, PYTHON_IMAGE, labels)
            lookup.append(time.perf_counter() - t0)
    finally:
        for tag in tags:
            await engine.images.remove(tag)
        await engine.images.remove(BUILT_TAG)
        await engine.aclose()
    print(machine())
    print(f"requirements=['numpy!=0.0.<random>'], {rounds} rounds, {hits} cache hits\n")
    plain_total = [d + b for d, b in zip(download, build, strict=True)]
    rows = [
        ["first use (probe, download, unpack, compile, commit, call)", *_p(first)],
        ["plain: download + build", *_p(plain_total)],
        ["plain: pip download on the host", *_p(download)],
        ["plain: docker build --no-cache (COPY wheels, unzip, compile)", *_p(build)],
        ["cache hit: new executor, first call importing numpy", *_p(hit)],
        ["no requirements: new executor, first call print(1)", *_p(base)],
        ["deps_image() on a hit (the lookup alone)", *_p(lookup)],
    ]
    print(table(["what", "p50 ms", "p95 ms", "max ms"], rows))
    left = [c for c in bench_leftovers() if _label(c) == "deps"]
    assert not left, f"containers left behind: {left}"


def _label(container: str) -> str:
    out = subprocess.run(
        ["docker", "inspect", "-f", f'{{{{index .Config.Labels "{BENCH_LABEL}"}}}}', container],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip()


def _p(samples: list[float]) -> list[float]:
    s = summary(samples)
    return [s["p50"], s["p95"], s["max"]]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hits", type=int, default=5)
    args = parser.parse_args()
    anyio.run(main, args.rounds, args.hits)
