"""``CodeExecutor``: run programs given as source text in the stock runner images.

A :class:`CodeExecutor` is an ``Executor[CodeRun, CodeResult]`` on top of a
:class:`ContainerExecutor` whose task module is the image's code runner
(``EXECUTOR_MODULE=/opt/executor/code.py`` or ``code.mjs``): every container setting and mode
applies unchanged. Per call it turns the :class:`CodeRun` into the code runner's input, and its
output into a :class:`CodeResult` (or the error it stands for: a program timeout is
:class:`ExecutionTimeout`, too many files :class:`CollectTooLarge`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, cast

import msgspec

from .._base import Execution, Executor
from .._code import (
    CODE_PY,
    MAX_TESTS,
    TAGS,
    TEST_OVERHEAD,
    Checker,
    CodeOutput,
    CodeResult,
    CodeRun,
    CodeTask,
    classify_line,
    code_run,
    compile_flags,
    default_image,
    judge_image,
    language_of,
)
from .._errors import (
    CollectTooLarge,
    ConfigError,
    ExecutionFailed,
    ExecutionTimeout,
    InputValidationError,
    OutputValidationError,
)
from .._stream import ExecutionStream
from .config import ContainerConfig
from .executor import ContainerExecutor

if TYPE_CHECKING:
    from .._stream import Tap

__all__ = ["CodeExecutor"]

#: Room for the JSON form of the program's output: a control byte is escaped as 6 bytes.
_ESCAPED = 6
#: Room for stream mode's forwarded lines on stderr: a tag of 2 bytes per line of >= 1 byte.
_TAGGED = 3
_SLACK = 64 * 1024
_TAG_TEXT = tuple(tag.decode() for tag in TAGS)


def program_timeout(timeout: float | None) -> float | None:
    """The program's own limit, just under the call's: the code runner still answers in time.

    The margin (10% of the timeout, at least 0.1 s, at most 1 s) covers writing the files,
    starting the interpreter and collecting the files back.
    """
    if timeout is None:
        return None
    return max(timeout - min(1.0, max(0.1, 0.1 * timeout)), 0.5 * timeout)


def untagged(logs: str) -> str:
    """The logs without the program's forwarded lines (they are in the result already)."""
    pieces = logs.split("\n")  # not splitlines(): the tags' \x1e is a line break there
    tail = pieces.pop()
    kept = [piece + "\n" for piece in pieces if not piece.startswith(_TAG_TEXT)]
    if tail and not tail.startswith(_TAG_TEXT):
        kept.append(tail)
    return "".join(kept)


class CodeExecutor(Executor[CodeRun, CodeResult]):
    """Run a program given as source text, each as its own process, in a locked-down container.

    ``language``: ``"python"`` (``python3 main.py``) and ``"bash"`` (``bash main.sh``) run in the
    Python runner image, ``"node"`` (``node main.mjs`` for an ES module, with import/export
    statements, else ``node main.cjs``) in the Node one; ``"c"``, ``"cpp"``, ``"rust"``,
    ``"java"`` (class ``Main``) and ``"go"`` are compiled, once per run, in the judge image
    (``executor/runner-judge:latest``, ``EXECUTOR_JUDGE_IMAGE``). Other languages are
    :class:`ConfigError`. ``CodeRun.tests`` judges the program against test cases with
    verdicts and per-test :class:`Usage` (README, "Judging programs"); every
    :class:`CodeResult` carries the program's ``usage``. ``config`` supplies every container
    setting (its image
    may extend the stock one); without it, the stock image of the language
    (``executor/runner-python:latest``, ``executor/runner-node:latest``, or
    ``EXECUTOR_PYTHON_IMAGE``/``EXECUTOR_NODE_IMAGE``) with the default settings. Every mode
    applies: ``mode="fresh"``, ``"pool"``, ``"fork"`` (a fresh process per program, the
    container wiped between them), ``"reuse"``.

    Per run the program gets a fresh working directory under ``/tmp`` holding it and the
    input files, its stdin, and ``argv``; stdout is kept up to ``config.max_output_bytes``,
    stderr up to ``config.max_log_bytes`` (flagged in the result when cut), files back up to
    ``max_collect_bytes``/``max_collect_files`` (:class:`CollectTooLarge` past them). The
    program's own time limit is just under ``config.timeout``, or under the run's own
    ``CodeRun.timeout`` (at most ``config.timeout``: a larger one is
    :class:`InputValidationError`); passing it raises :class:`ExecutionTimeout`. A non-zero
    exit status is a result.
    """

    def __init__(self, language: str = "python", config: ContainerConfig | None = None) -> None:
        family, module = language_of(language)
        if config is None:
            config = ContainerConfig(default_image(family))
        elif not isinstance(config, ContainerConfig):
            raise ConfigError(f"config must be a ContainerConfig, got {type(config).__name__}")
        self._judge = family == "judge" or judge_image(config.image)
        if family == "node" and self._judge:
            # The judge image runs node programs through code.py, next to every compiler.
            module = CODE_PY
        self.language = language
        self.config = config
        self.input_type: Any = CodeRun
        self.output_type: Any = CodeResult
        self._module = module
        self._family = family
        self._timeout = program_timeout(config.timeout)
        self._limits = (
            config.max_output_bytes,
            config.max_log_bytes,
            config.max_collect_bytes,
            config.max_collect_files,
        )
        streams = config.max_output_bytes + config.max_log_bytes
        inner = dataclasses.replace(
            config,
            env={**config.env, "EXECUTOR_MODULE": module},
            # Compiled programs (and checkers) run from their directory under /tmp. No loss:
            # the interpreted programs here can already run any code they like.
            tmpfs_exec=True,
            # The response carries stdout, stderr and the files; stderr carries the tagged
            # lines in stream mode. The program's own caps are enforced by the code runner.
            # Judging adds the compiler's output and each test's verdict and usage (the
            # tests' kept output shares the streams' caps).
            max_output_bytes=2 * _ESCAPED * streams
            + MAX_TESTS * TEST_OVERHEAD
            + 2 * config.max_collect_bytes
            + 16 * config.max_collect_files
            + _SLACK,
            max_log_bytes=_TAGGED * streams + config.max_log_bytes + _SLACK,
            schema_in=None,
            schema_out=None,
            validate=False,  # the task is built here; the output is decoded by its type
        )
        self._inner: ContainerExecutor[CodeTask, CodeOutput] = ContainerExecutor(
            inner, input_type=CodeTask, output_type=CodeOutput
        )

    @staticmethod
    def image_for(language: str) -> str:
        """The stock runner image for ``language`` (``executor/runner-python:latest`` for
        Python and bash, ``executor/runner-node:latest`` for Node,
        ``executor/runner-judge:latest`` for the compiled languages and for ``"judge"``), or
        the one named by ``EXECUTOR_PYTHON_IMAGE``/``EXECUTOR_NODE_IMAGE``/
        ``EXECUTOR_JUDGE_IMAGE``: the start of a config of your own,
        ``ContainerConfig(CodeExecutor.image_for("python"), mode="fork")``. The judge image
        runs every language, so a program there takes a checker in any language."""
        if language == "judge":
            return default_image("judge")
        return default_image(language_of(language)[0])

    def __repr__(self) -> str:
        state = "closed" if self._inner.closed else self.config.mode
        return f"<CodeExecutor {self.language} {self.config.image} {state}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._inner.closed

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> CodeExecutor:
        await self._inner.__aenter__()
        return self

    async def aclose(self) -> None:
        """Close the container executor underneath (see :meth:`ContainerExecutor.aclose`)."""
        await self._inner.aclose()

    # -- calls ---------------------------------------------------------------------------------

    def _task(
        self, value: CodeRun | Any, *, forward: bool = False
    ) -> tuple[CodeTask, float | None]:
        """The code runner's input, and the limit a timeout of this run names."""
        run = code_run(value)
        files = {
            name: content.encode() if isinstance(content, str) else bytes(content)
            for name, content in run.files.items()
        }
        max_stdout, max_stderr, max_bytes, max_files = self._limits
        timeout, limit = self._timeout, self.config.timeout
        if run.timeout is not None:
            bound = self.config.timeout
            if bound is not None and run.timeout > bound:
                raise InputValidationError(
                    f"{run.timeout:g} s is over the executor's config's timeout of {bound:g} s; "
                    "ask for less, or raise ContainerConfig(timeout=...)",
                    path="$.timeout",
                )
            timeout, limit = program_timeout(run.timeout), run.timeout
        tests = list(run.tests) if run.tests else None
        checker = run.checker
        if checker is not None:
            _check_checker_language(self.language, self._family, self._judge, checker.language)
        if checker is not None:
            flags = compile_flags(checker.language, checker.flags)
            checker = Checker(code=checker.code, language=checker.language, flags=flags)
        count = max(len(tests or ()), 1)
        task = CodeTask(
            language=self.language,
            code=run.code,
            stdin=run.stdin,
            argv=list(run.argv),
            files=files,
            timeout=timeout,
            max_stdout=max_stdout,
            max_stderr=max_stderr,
            max_collect_bytes=max_bytes,
            max_collect_files=max_files,
            forward=forward,
            tests=tests,
            time_limit=run.time_limit,
            memory_limit=run.memory_limit,
            compare=run.compare,
            float_tolerance=run.float_tolerance,
            checker=checker,
            stop_on_first_failure=run.stop_on_first_failure,
            flags=compile_flags(self.language, run.flags),
            keep_stdout=max(max_stdout // count, 1),
            keep_stderr=max(max_stderr // count, 1),
        )
        return task, limit

    def _result(
        self, execution: Execution[CodeOutput], limit: float | None
    ) -> Execution[CodeResult]:
        out = execution.output
        if out.timed_out:
            raise ExecutionTimeout(limit or 0.0, what="the program")
        if out.files_error is not None:
            error = out.files_error
            if error.code == "COLLECT_TOO_LARGE":
                raise CollectTooLarge(
                    f"the program left {error.message} in its working directory",
                    path="the working directory",
                    max_bytes=self.config.max_collect_bytes,
                    max_files=self.config.max_collect_files,
                    logs=out.stderr[-4000:],
                )
            raise ExecutionFailed(
                f"the program's files cannot be collected: {error.message}",
                code=error.code,
                logs=out.stderr[-4000:],
            )
        result = CodeResult(
            stdout=out.stdout,
            stderr=out.stderr,
            exit_code=out.exit_code,
            files=out.files,
            duration=out.duration,
            stdout_truncated=out.stdout_truncated,
            stderr_truncated=out.stderr_truncated,
            usage=out.usage,
            compile=out.compile,
            verdict=out.verdict,
            tests=out.tests or [],
        )
        return cast("Execution[CodeResult]", msgspec.structs.replace(execution, output=result))

    def _no_code_runner(self, exc: ExecutionFailed) -> ExecutionFailed:
        if exc.code not in ("NO_EXECUTE", "NO_TASK"):
            return exc
        return ExecutionFailed(
            f"the image {self.config.image} has no code runner at {self._module}: use a runner "
            f"image built from this version (or one extending it) ({exc.message})",
            code=exc.code,
            details=exc.details,
            logs=exc.logs,
        )

    def _not_code_runner(self, exc: OutputValidationError) -> OutputValidationError:
        """The code runner's answers always decode: one that does not came from another
        runner (an image whose own task answered, e.g. a Go function image)."""
        stock = CodeExecutor.image_for(self.language)
        return OutputValidationError(
            f"{exc.reason}. The image {self.config.image} answered, but not as a code runner: "
            f"CodeExecutor needs an image with one ({stock}, CodeExecutor.image_for"
            f"({self.language!r}), or an image built FROM it)",
            path=exc.path,
        )

    async def run(self, input: CodeRun | Any) -> Execution[CodeResult]:
        """Run one program; its :class:`CodeResult` with the container's data.

        ``input`` is a :class:`CodeRun`, a dict of its fields, or the source alone.
        """
        task, limit = self._task(input)
        try:
            execution = await self._inner.run(task)
        except ExecutionFailed as exc:
            raise self._no_code_runner(exc) from exc.__cause__
        except OutputValidationError as exc:
            raise self._not_code_runner(exc) from exc
        return self._result(execution, limit)

    def stream(self, input: CodeRun | Any) -> ExecutionStream[CodeResult]:
        """Run one program, yielding its stdout and stderr lines live, then the Execution.

        Each line is a :class:`LogLine` with ``stream="stdout"`` or ``"stderr"`` (``"log"``
        for anything the code runner wrote itself); the Execution's ``logs`` keep only the
        latter. See :meth:`Executor.stream`.
        """
        return ExecutionStream(functools.partial(self._streamed, input), classify=classify_line)

    async def _streamed(self, input: CodeRun | Any, tap: Tap) -> Execution[CodeResult]:
        task, limit = self._task(input, forward=True)
        try:
            execution = await self._inner._streamed(task, tap)
        except ExecutionFailed as exc:
            raise self._no_code_runner(exc) from exc.__cause__
        except OutputValidationError as exc:
            raise self._not_code_runner(exc) from exc
        logs = untagged(execution.logs)
        return self._result(msgspec.structs.replace(execution, logs=logs), limit)


def _check_checker_language(program: str, family: str, judge: bool, language: str) -> None:
    """A checker runs in the program's image, next to it: refuse one that image cannot run.

    The judge image runs every language; the Node image only JavaScript; the Python image
    Python and bash (and the compiled languages where it is the judge image: its code runner
    says so otherwise).
    """
    checker_family = language_of(language)[0]
    if judge or (family == "node") == (checker_family == "node"):
        return
    judged = f"ContainerConfig({default_image('judge')!r})"  # CodeExecutor.image_for("judge")
    if family == "node":
        reason = (
            f"the Node image runs only JavaScript checkers, not {language!r}: judge the program "
            f"in the judge image, which runs every language, CodeExecutor('node', {judged}), "
            "or write the checker as Checker(code, language='node')"
        )
    else:
        reason = (
            "this image has no Node for a JavaScript checker: judge the program in the judge "
            f"image, which runs every language, CodeExecutor({program!r}, {judged}), or write the "
            "checker in python or bash"
        )
    raise InputValidationError(reason, path="$.checker.language")
