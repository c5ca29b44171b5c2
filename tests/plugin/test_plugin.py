"""The pytest plugin (``executor.pytest_plugin``), run on test files of its own with pytester.

Each case writes a small test file and runs pytest on it in a subprocess (the plugin loads
through its ``pytest11`` entry point, as in a user's project), under pytest-asyncio's
``auto`` and ``strict`` modes. Engine-free cases use :class:`~executor.testing.FakeEngine`.
"""

from __future__ import annotations

import subprocess
import textwrap
import uuid
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

MODES = ["auto", "strict"]
NOWHERE = "unix:///nonexistent/executor-test/docker.sock"


def setup(pytester: pytest.Pytester, mode: str, *bodies: str) -> None:
    """A project whose tests are ``bodies``; in strict mode every test is marked asyncio."""
    pytester.makeini(
        f"""
        [pytest]
        asyncio_mode = {mode}
        asyncio_default_fixture_loop_scope = function
        filterwarnings = error
        """
    )
    code = "\n".join(textwrap.dedent(body) for body in bodies)
    if mode == "strict":
        code = code.replace("async def test_", "@pytest.mark.asyncio\nasync def test_")
    pytester.makepyfile(test_user=code)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", *args, timeout=120)


FAKE_TESTS = """
    import pytest

    from executor import ContainerConfig, ExecutionFailed, LocalConfig
    from executor.testing import FakeEngine


    async def test_container_executor_with_a_fake_engine(container_executor):
        engine = FakeEngine(lambda value: {"doubled": value["n"] * 2})
        ex = await container_executor(ContainerConfig("any/image"), engine=engine)
        assert await ex.execute({"n": 21}) == {"doubled": 42}


    async def test_pooled_executor_is_entered(container_executor):
        engine = FakeEngine()
        config = ContainerConfig("any/image", mode="pool", containers=2, prewarm=True)
        ex = await container_executor(config, input_type=int, output_type=int, engine=engine)
        assert ex.engines[0]["idle_pooled"] == 2
        assert await ex.execute(3) == 3


    async def test_local_executor(local_executor):
        ex = await local_executor(lambda n: n + 1, LocalConfig(timeout=5), input_type=int,
                                  output_type=int)
        assert await ex.execute(1) == 2


    async def test_local_failure_is_an_executor_error(local_executor):
        def boom(n: int) -> int:
            raise ValueError("no")

        ex = await local_executor(boom)
        with pytest.raises(ExecutionFailed):
            await ex.execute(1)
"""


LEAK_TESTS = """
    import pytest

    from executor import ContainerConfig
    from executor.testing import FakeEngine


    async def test_leaks(monkeypatch, container_executor):
        engine = FakeEngine()

        async def lost(container_id):
            pass  # an engine that says it removed the container, and did not

        monkeypatch.setattr(engine, "remove", lost)
        ex = await container_executor(ContainerConfig("any/image"), engine=engine)
        assert await ex.execute(1) == 1


    async def test_clean(container_executor):
        ex = await container_executor(ContainerConfig("any/image"), engine=FakeEngine())
        assert await ex.execute(1) == 1
"""


ENGINE_TESTS = """
    import pytest

    from executor import ContainerConfig


    async def test_engine(executor_engine):
        await executor_engine.ping()


    async def test_default_engine_executor(container_executor):
        await container_executor(ContainerConfig("executor/runner-python:latest"))


    async def test_no_engine_needed(local_executor):
        assert await (await local_executor(abs, input_type=int, output_type=int)).execute(-1) == 1
"""


@pytest.mark.parametrize("mode", MODES)
def test_fixtures_without_an_engine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """With DOCKER_HOST pointing nowhere, in auto and strict mode alike: executors over a fake
    engine and local ones work, a test that leaves a container errors at teardown (and no
    other test does), tests needing the real engine skip and say why."""
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    monkeypatch.delenv("EXECUTOR_REQUIRE_DOCKER", raising=False)
    setup(pytester, mode, FAKE_TESTS, LEAK_TESTS, ENGINE_TESTS)
    result = run(pytester)
    result.assert_outcomes(passed=4 + 2 + 1, skipped=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks*",
            "*left 1 container(s) behind after aclose(): fake* on fake://engine*",
        ]
    )
    result.stdout.fnmatch_lines(["*SKIPPED*no Docker engine*nonexistent*"])
    errors = [line for line in result.outlines if line.startswith("ERROR ")]
    assert len(errors) == 1 and "test_leaks" in errors[0]


@pytest.mark.parametrize(
    ("flag", "env"), [("--executor-require-engine", None), (None, "1")], ids=["flag", "env"]
)
def test_missing_engine_fails_when_required(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, flag: str | None, env: str | None
) -> None:
    """--executor-require-engine, or EXECUTOR_REQUIRE_DOCKER=1, turns those skips into failures."""
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    if env is None:
        monkeypatch.delenv("EXECUTOR_REQUIRE_DOCKER", raising=False)
    else:
        monkeypatch.setenv("EXECUTOR_REQUIRE_DOCKER", env)
    setup(pytester, "auto", ENGINE_TESTS)
    result = run(pytester, *([flag] if flag else []))
    # executor_engine fails in its set-up (an error), container_executor in the test body.
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*no Docker engine*nonexistent*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def label() -> Iterator[str]:
    """A label for the containers of one real-engine case; whatever carries it is removed."""
    value = f"executor.test-plugin={uuid.uuid4().hex[:12]}"
    yield value
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={value}"], capture_output=True, text=True
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


REAL_TESTS = """
    import os

    import pytest

    from executor import ContainerConfig
    from executor.engine.docker import DockerEngine

    KEY, VALUE = os.environ["TEST_LABEL"].split("=")
    TASK = {"/app/execute.py": "def execute(value):\\n    return value\\n"}


    def config(**settings):
        return ContainerConfig(
            "executor/runner-python:latest", files=TASK, labels={KEY: VALUE}, **settings
        )


    async def test_engine_answers(executor_engine):
        assert (await executor_engine.info()).cpus >= 1


    async def test_reused_worker(container_executor):
        ex = await container_executor(config(mode="reuse", containers=0))
        assert [await ex.execute(i) for i in range(3)] == [0, 1, 2]


    async def test_leaks(monkeypatch, container_executor):
        async def lost(self, container_id):
            pass  # the engine says it removed the container, and did not

        monkeypatch.setattr(DockerEngine, "remove", lost)
        ex = await container_executor(config())
        assert await ex.execute(1) == 1
"""


@pytest.mark.docker
@pytest.mark.parametrize("mode", MODES)
def test_fixtures_on_the_real_engine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, label: str, mode: str
) -> None:
    """On the real engine: the engine fixture answers, executors run, a leak is caught."""
    monkeypatch.setenv("TEST_LABEL", label)
    setup(pytester, mode, REAL_TESTS)
    result = run(pytester, "--executor-require-engine")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks*", "*left 1 container(s)*"])
