"""Sessions against the real engine: state, isolation, interrupts, lost interpreters, files,
displays, expiry, cancellation, pools, bash, and 100 sessions at once.

The image is ``EXECUTOR_PYTHON_IMAGE`` (it must hold ``/opt/executor/session.py``); the
matplotlib test brings matplotlib in with ``requirements=`` (fetched on the host: it skips
when no package registry answers, as the other ``requirements=`` tests do).
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from executor import (
    CellResult,
    ConfigError,
    ProtocolError,
    Session,
    SessionFileError,
    SessionLost,
    SessionPool,
    reap,
)
from executor.container.session import SESSION_LABEL

from ._support import CASE_LABEL, case, containers
from ._support import pypi as pypi  # the registry check: skip when pip reaches none
from .conftest import GO_IMAGE, PYTHON_IMAGE, config
from .test_runtime import require_runsc

pytestmark = pytest.mark.docker

MakeSession = Callable[..., Session]


@pytest.fixture
async def make_session() -> AsyncIterator[MakeSession]:
    """Factory: ``make_session(language, **config)`` → a session closed after the test."""
    made: list[Session] = []

    def make(
        language: str = "python", *, session: dict[str, Any] | None = None, **kw: Any
    ) -> Session:
        s = Session(language, config(**kw), **(session or {}))
        made.append(s)
        return s

    try:
        yield make
    finally:
        for s in made:
            await s.aclose()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# -- Python -----------------------------------------------------------------------------------


async def test_state_is_kept_across_cells(make_session: MakeSession) -> None:
    """Variables and imports of one cell are there in the next; the last expression's repr
    is the result and print() is stdout."""
    async with make_session() as s:
        first = await s.run("import math\nx = math.pi")
        assert first.result is None and first.error is None and first.stdout == ""
        second = await s.run("print(round(x, 2)); x * 2")
        assert second.stdout == "3.14\n"
        assert second.result == repr(2 * 3.141592653589793)
        assert (await s.run("'a' + 'b'")).result == "'ab'"


async def test_raising_cell_is_a_result(make_session: MakeSession) -> None:
    """A cell's exception comes back in ``error`` with its traceback; the session goes on."""
    async with make_session() as s:
        await s.run("y = 2")
        r = await s.run("def f():\n    raise ValueError('bad value')\nf()")
        assert r.error is not None
        assert r.error.name == "ValueError" and r.error.value == "bad value"
        assert "line 2, in f" in r.error.traceback and "session.py" not in r.error.traceback
        assert (await s.run("y + 1")).result == "3"
        syntax = await s.run("def (")
        assert syntax.error is not None and syntax.error.name == "SyntaxError"


async def test_timeout_interrupts_and_keeps_state(make_session: MakeSession) -> None:
    """A busy loop past its timeout gets KeyboardInterrupt; variables set before are kept."""
    async with make_session() as s:
        await s.run("kept = 41")
        r = await s.run("while True:\n    pass", timeout=0.5)
        assert r.interrupted and r.error is not None and r.error.name == "KeyboardInterrupt"
        assert (await s.run("kept + 1")).result == "42"


async def test_ignored_sigint_restarts_the_interpreter(make_session: MakeSession) -> None:
    """A cell that ignores SIGINT past its timeout costs the interpreter (SessionLost, the
    files kept), and the next cell runs in a fresh one."""
    async with make_session(session={"grace": 0.5}) as s:
        await s.run("gone = 1\nopen('kept.txt', 'w').write('x')")
        code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
        with pytest.raises(SessionLost) as info:
            await s.run(code, timeout=0.5)
        assert info.value.code == "SESSION_LOST" and info.value.files_kept
        assert "SIGINT" in info.value.reason
        r = await s.run("'gone' in globals(), open('kept.txt').read()")
        assert r.result == "(False, 'x')"


async def test_os_exit_loses_the_interpreter(make_session: MakeSession) -> None:
    """``os._exit`` in a cell raises SessionLost; the next cell works in a fresh interpreter."""
    async with make_session() as s:
        await s.run("v = 1")
        with pytest.raises(SessionLost, match="exited with status 7"):
            await s.run("import os\nos._exit(7)")
        r = await s.run("'v' in globals()")
        assert r.result == "False"


async def test_out_of_memory_loses_the_interpreter(make_session: MakeSession) -> None:
    """A cell past the memory limit is OOM-killed: SessionLost, then a fresh interpreter."""
    async with make_session(memory_bytes=96 * 1024 * 1024) as s:
        await s.run("small = 1")
        with pytest.raises(SessionLost) as info:
            await s.run("hog = b'x' * (400 * 1024 * 1024)")
        assert info.value.code == "SESSION_LOST"
        assert (await s.run("1 + 1")).result == "2"


async def test_sessions_are_isolated(make_session: MakeSession) -> None:
    """Two sessions see neither each other's variables, files, nor processes."""
    async with make_session() as a, make_session() as b:
        await a.run("secret = 'a'\nopen('a.txt', 'w').write('a')")
        await a.run("import subprocess\np = subprocess.Popen(['sleep', '4242'])")
        assert (await b.run("'secret' in globals()")).result == "False"
        assert await b.files() == []
        probe = (
            "import os\n"
            "found = []\n"
            "for pid in os.listdir('/proc'):\n"
            "    try:\n"
            "        found.append(open(f'/proc/{pid}/cmdline', 'rb').read())\n"
            "    except OSError:\n"
            "        pass\n"
            "any(b'4242' in c for c in found)"
        )
        assert (await b.run(probe)).result == "False"
        assert (await a.run(probe)).result == "True"
        assert a.container_id != b.container_id


async def test_stdin_and_output_caps(make_session: MakeSession) -> None:
    """A cell reads its ``stdin``; stdout past ``max_output_bytes`` is cut and flagged."""
    async with make_session(max_output_bytes=1000) as s:
        assert (await s.run("input()", stdin="hello\n")).result == "'hello'"
        r = await s.run("print('z' * 5000)")
        assert r.stdout == "z" * 1000 and r.stdout_truncated


async def test_rich_repr_display(make_session: MakeSession) -> None:
    """A last value with ``_repr_html_`` comes back as a text/html Display."""
    async with make_session() as s:
        r = await s.run("class T:\n    def _repr_html_(self):\n        return '<b>hi</b>'\nT()")
        assert [(d.mime, d.data) for d in r.displays] == [("text/html", b"<b>hi</b>")]


async def test_matplotlib_figure_comes_back_as_png(make_session: MakeSession, pypi: None) -> None:
    """A matplotlib figure a cell draws comes back as PNG bytes of the figure's pixel size."""
    async with make_session(requirements=["matplotlib"], build_timeout=900) as s:
        r = await s.run(
            "import matplotlib.pyplot as plt\n"
            "fig = plt.figure(figsize=(3, 2), dpi=50)\n"
            "plt.plot([1, 2, 3])\n"
            "plt.show()"
        )
        assert r.error is None, r.error
        assert len(r.displays) == 1 and r.displays[0].mime == "image/png"
        assert _png_size(r.displays[0].data) == (150, 100)
        assert (await s.run("1")).displays == []  # figures are closed once shown


async def test_upload_download_round_trip_with_caps(make_session: MakeSession) -> None:
    """Files go in and out of the working directory within ``max_collect_bytes``; larger
    files, paths leading outside and directories are refused with SessionFileError."""
    async with make_session(max_collect_bytes=4096) as s:
        await s.upload("data/in.csv", b"a,b\n1,2\n")
        r = await s.run("open('data/in.csv').read().upper()")
        assert r.result == repr("A,B\n1,2\n")
        await s.run("open('out.bin', 'wb').write(bytes(range(256)))")
        assert await s.download("out.bin") == bytes(range(256))
        assert await s.files() == ["data/in.csv", "out.bin"]
        with pytest.raises(SessionFileError) as big:
            await s.upload("big", b"x" * 5000)
        assert big.value.code == "FILE_TOO_LARGE"
        await s.run("open('huge', 'wb').write(b'x' * 5000)")
        with pytest.raises(SessionFileError) as huge:
            await s.download("huge")
        assert huge.value.code == "FILE_TOO_LARGE"
        for bad in ("../etc/passwd", "/etc/passwd"):
            with pytest.raises(SessionFileError) as path:
                await s.download(bad)
            assert path.value.code == "BAD_PATH"
        await s.run("import os\nos.symlink('/etc', 'out')")
        with pytest.raises(SessionFileError) as link:
            await s.download("out/passwd")
        assert link.value.code == "BAD_PATH"
        with pytest.raises(SessionFileError) as missing:
            await s.download("nope")
        assert missing.value.code == "FILE_NOT_FOUND"
        for op in (lambda: s.download("data"), lambda: s.upload("data", b"x")):  # a directory
            with pytest.raises(SessionFileError) as directory:
                await op()
            assert directory.value.code == "NOT_A_FILE"


async def test_restart_keeps_files(make_session: MakeSession) -> None:
    """restart() gives a fresh interpreter in the same container, files kept."""
    async with make_session() as s:
        await s.run("z = 1\nopen('f', 'w').write('kept')")
        cid = s.container_id
        await s.restart()
        r = await s.run("'z' in globals(), open('f').read()")
        assert r.result == "(False, 'kept')" and s.container_id == cid


async def test_cancelled_run_leaves_the_session_usable(make_session: MakeSession) -> None:
    """A run() cancelled from outside interrupts its cell; the next cell sees the state."""
    async with make_session() as s:
        await s.run("before = 5")
        with anyio.move_on_after(0.5) as scope:
            await s.run("while True:\n    pass", timeout=None)
        assert scope.cancelled_caught
        assert (await s.run("before")).result == "5"


async def test_interrupt_from_another_task(make_session: MakeSession) -> None:
    """interrupt() stops the running cell as a timeout would."""
    async with make_session() as s:
        results: list[CellResult] = []

        async def cell() -> None:
            results.append(await s.run("import time\nwhile True:\n    time.sleep(0.01)"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(cell)
            while not s._running:
                await anyio.sleep(0.01)
            await anyio.sleep(0.2)
            await s.interrupt()
        assert results[0].interrupted and results[0].error is not None


async def test_idle_expiry_removes_the_container(make_session: MakeSession) -> None:
    """After ``idle_timeout`` without a cell the container is removed; run() then raises
    SessionLost with code SESSION_EXPIRED."""
    labels = case()
    async with make_session(labels=labels, session={"idle_timeout": 0.5}) as s:
        await s.run("x = 1")
        mine = s.container_id
        assert mine is not None and mine[:12] in containers(labels)
        with anyio.fail_after(30):
            while mine[:12] in containers(labels):  # the implicit pool's spare stays
                await anyio.sleep(0.1)
        with pytest.raises(SessionLost) as info:
            await s.run("x")
        assert info.value.code == "SESSION_EXPIRED"


async def test_container_removed_from_outside(make_session: MakeSession) -> None:
    """A session whose container is removed from outside raises SessionLost (files gone),
    and the next cell runs in a new container."""
    async with make_session() as s:
        await s.run("x = 1")
        first = s.container_id
        assert first is not None
        subprocess.run(["docker", "rm", "-f", first], capture_output=True, check=True)
        with pytest.raises(SessionLost) as info:
            await s.run("x")
        assert not info.value.files_kept
        assert (await s.run("2")).result == "2"
        assert s.container_id not in (None, first)


async def test_leaving_removes_the_container_and_reap_knows_sessions() -> None:
    """Leaving ``async with`` removes the session's container (what stays is the spare of the
    implicit pool, for the next such session); session containers carry the managed labels
    and ``executor.session``, so reap() finds them."""
    labels = case()
    async with Session("python", config(labels=labels)) as s:
        mine = s.container_id
        assert mine is not None and s._own_pool is not None
        await s.run("1")
        found = subprocess.run(
            [
                "docker",
                "inspect",
                "-f",
                f'{{{{index .Config.Labels "{SESSION_LABEL}"}}}}',
                str(s.container_id),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert found.stdout.strip() == "python"
        assert await reap(labels=labels) == []  # its owner is alive
    assert mine[:12] not in containers(labels)
    assert len(containers(labels)) <= 1


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ("import sys\nsys.stderr.write('no interpreter here\\n')\nsys.exit(3)\n", "status 3"),
        ("b = []\nwhile True:\n    b.append(bytearray(8 << 20))\n", "ran out of memory"),
    ],
    ids=["exits", "oom"],
)
async def test_a_session_server_that_never_starts_says_why(server: str, reason: str) -> None:
    """An image whose session server ends before its ready line (a custom image, the wrong
    one) is a PROTOCOL_ERROR that says how the container ended, as the engine tells it (an OOM
    kill included), with its stderr; nothing is left."""
    labels = case()
    cfg = config(
        labels=labels, memory_bytes=64 * 1024 * 1024, files={"/opt/executor/session.py": server}
    )
    async with SessionPool("python", cfg, size=0) as pool:
        with pytest.raises(ProtocolError) as info:
            async with pool.session() as s:
                await s.run("1")
    assert info.value.code == "PROTOCOL_ERROR"
    assert "ended before its interpreter started" in info.value.message
    assert reason in info.value.message, info.value.message
    assert "/opt/executor/session.py" in info.value.message
    if reason == "status 3":
        assert "no interpreter here" in (info.value.logs or "")
    assert not containers(labels)


async def test_an_image_without_python_says_sessions_need_the_runner_image() -> None:
    """A session on an image without python3 (the Go runner's, from scratch) fails at start
    with a PROTOCOL_ERROR that names what sessions need, not the runtime's exec error alone;
    the container it made is removed."""
    labels = case()
    async with SessionPool("python", config(GO_IMAGE, labels=labels), size=0) as pool:
        with pytest.raises(ProtocolError) as info:
            async with pool.session():
                pass
    assert info.value.code == "PROTOCOL_ERROR"
    message = info.value.message
    assert "cannot start the session server" in message and "python3" in message
    assert "executor/runner-python" in message and GO_IMAGE in message
    assert not containers(labels)


def test_bad_arguments() -> None:
    """A language other than python/bash, or a bad idle_timeout, is a ConfigError."""
    with pytest.raises(ConfigError):
        Session("ruby", config())
    with pytest.raises(ConfigError):
        Session("python", config(), idle_timeout=-1)


# -- pools ------------------------------------------------------------------------------------


async def test_pool_gives_started_containers_and_cleans_up() -> None:
    """A SessionPool keeps containers started; each session gets its own, removed at its
    end; closing the pool removes the idle ones."""
    labels = case()
    async with SessionPool("python", config(labels=labels), size=2) as pool:
        assert pool.idle == 2
        async with pool.session() as a, pool.session() as b:
            await a.run("x = 'a'")
            assert (await b.run("'x' in globals()")).result == "False"
            assert a.container_id != b.container_id
        with anyio.fail_after(30):
            while pool.idle < 2:
                await anyio.sleep(0.05)
    assert containers(labels) == []


async def test_prewarmed_container_is_ready_before_it_is_leased() -> None:
    """After the prewarm the idle container's session server has already said ready (its line
    waits in the container's kept stdout), and a session entered then takes that container:
    no new container is made for it."""
    labels = case()
    async with SessionPool("python", config(labels=labels), size=1) as pool:
        idle = [c for _, c in pool._pool._idle]
        assert len(idle) == 1 and idle[0].rest.startswith(b'{"ready":true')
        async with pool.session() as s:  # the prewarmed container: none made for it
            assert s.container_id == idle[0].id
            assert (await s.run("1 + 1")).result == "2"
    assert containers(labels) == []


# -- bash -------------------------------------------------------------------------------------


async def test_bash_keeps_directory_environment_and_variables(make_session: MakeSession) -> None:
    """A bash session keeps cwd, exported and shell variables; exit_code is the last
    command's status; a timeout interrupts the cell and keeps the state."""
    async with make_session("bash") as s:
        r = await s.run("mkdir -p sub && cd sub\nexport E=1\nv=2")
        assert r.exit_code == 0 and r.result is None
        r = await s.run("echo $E $v $(basename $(pwd)); false")
        assert r.stdout == "1 2 sub\n" and r.exit_code == 1
        slow = await s.run("while :; do :; done", timeout=0.5)
        assert slow.interrupted and slow.exit_code == 130
        assert (await s.run("echo $v")).stdout == "2\n"
        assert (await s.run("cat", stdin="in\n")).stdout == "in\n"
        with pytest.raises(SessionLost):
            await s.run("exit 3")
        assert (await s.run("echo ${v:-unset}")).stdout == "unset\n"


# -- gVisor -----------------------------------------------------------------------------------


async def test_session_under_gvisor(make_session: MakeSession) -> None:
    """Under runsc a session keeps state, survives a timeout and recovers from os._exit."""
    require_runsc()
    async with make_session(runtime="runsc") as s:
        await s.run("x = 3")
        assert (await s.run("while True:\n    pass", timeout=0.5)).interrupted
        assert (await s.run("x")).result == "3"
        with pytest.raises(SessionLost):
            await s.run("import os\nos._exit(1)")
        assert (await s.run("1")).result == "1"


async def test_bash_session_and_oom_under_gvisor(make_session: MakeSession) -> None:
    """Under runsc a bash session keeps its state through a timeout, and a Python cell past
    the memory limit raises SessionLost with the next cell served (gVisor may end the whole
    sandbox: then in a new container)."""
    require_runsc()
    async with make_session("bash", runtime="runsc") as b:
        await b.run("cd /tmp && v=7")
        assert (await b.run("while :; do :; done", timeout=0.5)).interrupted
        assert (await b.run("echo $v $(pwd)")).stdout == "7 /tmp\n"
    async with make_session(runtime="runsc", memory_bytes=96 * 1024 * 1024) as s:
        with pytest.raises(SessionLost):
            await s.run("hog = b'x' * (400 * 1024 * 1024)")
        assert (await s.run("1 + 1")).result == "2"


# -- many -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_hundred_concurrent_sessions() -> None:
    """100 sessions at once, each running 10 cells against its own state, all correct."""
    labels = case()
    async with SessionPool("python", config(labels=labels, max_starting=4), size=0) as pool:

        async def agent(n: int) -> None:
            async with pool.session() as s:
                await s.run(f"total = {n}")
                for i in range(9):
                    r = await s.run(f"total += {i}\ntotal")
                    assert r.error is None and r.result == str(n + sum(range(i + 1)))

        async with anyio.create_task_group() as tg:
            for n in range(100):
                tg.start_soon(agent, n)
    assert containers(labels) == []


def test_image_has_the_session_server() -> None:
    """The runner image ships the session server (the sessions need it)."""
    done = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "ls", PYTHON_IMAGE, "/opt/executor/"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot run {PYTHON_IMAGE}")
    assert "session.py" in done.stdout.split()


async def test_forged_flood_on_the_protocol_ends_only_that_container(
    make_session: MakeSession,
) -> None:
    """A cell that writes megabytes straight to the session server's protocol stream (through
    /proc/1/fd) costs its own container (SessionLost); the host's memory stays bounded and the
    next cell runs in a new container."""
    caps = {"max_output_bytes": 1000, "max_log_bytes": 1000, "max_collect_bytes": 1000}
    async with make_session(**caps) as s:
        flood = (
            "import os\n"
            "for fd in os.listdir('/proc/1/fd'):\n"
            "    if int(fd) > 2:\n"
            "        try:\n"
            "            f = open(f'/proc/1/fd/{fd}', 'wb')\n"
            "        except OSError:\n"
            "            continue\n"
            "        try:\n"
            "            f.write(b'x' * (4 << 20)); f.flush()\n"
            "        except OSError:\n"
            "            pass\n"
        )
        with pytest.raises(SessionLost) as info:
            await s.run(flood, timeout=10)
        assert not info.value.files_kept and "passed" in info.value.reason, info.value.reason
        assert (await s.run("2")).result == "2"


async def test_forked_child_does_not_answer(make_session: MakeSession) -> None:
    """A cell that forks: the child's output is the cell's, only the interpreter answers, and
    the following cells pair with their own answers."""
    async with make_session() as s:
        r = await s.run(
            "import os, sys\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    print('child')\n"
            "else:\n"
            "    os.waitpid(pid, 0)\n"
            "'parent'"
        )
        assert r.result == "'parent'" and r.stdout == "child\n"
        assert [(await s.run(f"{n} * 2")).result for n in range(3)] == ["0", "2", "4"]


async def test_fork_bomb_is_contained(make_session: MakeSession) -> None:
    """A fork bomb hits ``pids_limit`` inside its own container: the cell ends (or the
    interpreter is lost) and the session serves the next cell."""
    async with make_session(pids_limit=64, session={"grace": 1.0}) as s:
        with contextlib.suppress(SessionLost):
            await s.run(
                "import os, time\n"
                "for _ in range(200):\n"
                "    try:\n"
                "        os.fork()\n"
                "    except OSError:\n"
                "        time.sleep(30)\n",
                timeout=2,
            )
        assert (await s.run("40 + 2")).result == "42"


async def test_max_lifetime_ends_a_running_cell(make_session: MakeSession) -> None:
    """At ``max_lifetime`` the container goes even while a cell runs: SESSION_EXPIRED."""
    async with make_session(session={"max_lifetime": 1.0}) as s:
        with pytest.raises(SessionLost) as info:
            await s.run("import time\ntime.sleep(60)", timeout=None)
        assert info.value.code == "SESSION_EXPIRED"
        assert s.container_id is None


async def test_reap_removes_what_a_killed_process_left() -> None:
    """A process SIGKILLed with a session pool open leaves containers that reap() removes."""
    import signal

    labels = case()
    script = textwrap.dedent(
        f"""
        import anyio, sys
        from executor import ContainerConfig, SessionPool
        async def main():
            config = ContainerConfig({PYTHON_IMAGE!r}, labels={dict(config().labels, **labels)!r})
            async with SessionPool("python", config, size=1) as pool:
                async with pool.session() as s:
                    await s.run("x = 1")
                    print("ready", flush=True)
                    await anyio.sleep(600)
        anyio.run(main)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ
    ) as child:
        try:
            assert child.stdout is not None
            with anyio.fail_after(60):
                line = await anyio.to_thread.run_sync(child.stdout.readline)
            assert line == "ready\n"
            with anyio.fail_after(30):
                while len(containers(labels)) < 2:  # the session's and the pool's refill
                    await anyio.sleep(0.05)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    removed = await reap(labels=labels)
    assert len(removed) == 2 and containers(labels) == []


@pytest.mark.parametrize("ending", ["asyncio.run", "loop.close"])
async def test_implicit_pool_leaves_nothing_when_the_process_ends(ending: str) -> None:
    """A bare session's implicit pool keeps a spare container, removed when its event loop ends
    (asyncio.run cancels the loop's tasks) or, for a loop closed without that, at interpreter
    exit (the sweeper, awaited)."""
    labels = case()
    script = textwrap.dedent(
        f"""
        import asyncio, subprocess
        from executor import ContainerConfig, Session
        config = ContainerConfig({PYTHON_IMAGE!r}, labels={dict(config().labels, **labels)!r})
        async def main():
            async with Session("python", config) as s:
                await s.run("x = 1")
                pool = s._own_pool
            while pool.idle < 1:
                await asyncio.sleep(0.05)
        if {ending!r} == "asyncio.run":
            asyncio.run(main())
        else:
            loop = asyncio.new_event_loop()
            loop.run_until_complete(main())
            loop.close()
        left = subprocess.run(
            ["docker", "ps", "-aq", "--filter", "label={CASE_LABEL}={labels[CASE_LABEL]}"],
            capture_output=True, text=True,
        ).stdout.split()
        print(len(left), flush=True)
        """
    )
    done = await anyio.run_process(
        [sys.executable, "-c", script], env=os.environ, check=False, stderr=subprocess.STDOUT
    )
    out = done.stdout.decode()
    assert done.returncode == 0, out
    # Before the exit hook: nothing left after asyncio.run, the spare after loop.close().
    assert out.split()[-1] == ("0" if ending == "asyncio.run" else "1"), out
    assert "Traceback" not in out and "Unclosed" not in out, out
    assert containers(labels) == []


async def test_top_level_await(make_session: MakeSession) -> None:
    """A cell may await at top level (as in IPython); an interrupted coroutine does not run
    on in later cells."""
    async with make_session() as s:
        r = await s.run("import asyncio\nawait asyncio.sleep(0, result=21) * 2")
        assert r.result == "42"
        ticking = (
            "n = 0\n"
            "async def tick():\n"
            "    global n\n"
            "    while True:\n"
            "        n += 1\n"
            "        await asyncio.sleep(0.001)\n"
            "await tick()"
        )
        assert (await s.run(ticking, timeout=0.3)).interrupted
        r = await s.run("m = n\nawait asyncio.sleep(0.1)\nn - m")
        assert r.result == "0"


async def test_cancelled_cell_that_ignores_the_interrupt(make_session: MakeSession) -> None:
    """A cancelled cell that ignores SIGINT costs the interpreter: the next call says so
    (SessionLost, files kept) without running, and the one after works."""
    async with make_session(session={"grace": 0.5}) as s:
        await s.run("before = 5")
        code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
        with anyio.move_on_after(0.5):
            await s.run(code, timeout=None)
        with pytest.raises(SessionLost) as info:
            await s.run("before")
        assert info.value.files_kept
        assert (await s.run("'before' in globals()")).result == "False"
