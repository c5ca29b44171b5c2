"""The seed's ContainerExecutor example, as written, against the Python runner; run() metadata."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import msgspec
import pytest

from executor import ContainerConfig, ContainerExecutor, Execution, InputValidationError

from ._support import case, containers
from .conftest import PYTHON_IMAGE, config

if TYPE_CHECKING:
    from .conftest import MakeExecutor

pytestmark = pytest.mark.docker

MiB = 1024 * 1024


class Input(msgspec.Struct):
    values: list[float]


class Output(msgspec.Struct):
    count: int
    sum: float
    mean: float


# JSON Schema bytes, as the seed passes them.
INPUT_SCHEMA = b"""{
  "type": "object",
  "properties": {"values": {"type": "array", "items": {"type": "number"}, "minItems": 1}},
  "required": ["values"]
}"""
OUTPUT_SCHEMA = b"""{
  "type": "object",
  "properties": {
    "count": {"type": "integer"},
    "sum": {"type": "number"},
    "mean": {"type": "number"}
  },
  "required": ["count", "sum", "mean"]
}"""

STATS = """
def execute(input):
    values = input["values"]
    total = sum(values)
    return {"count": len(values), "sum": total, "mean": total / len(values)}
"""


def seed_config() -> ContainerConfig:
    """The seed example's settings (network off, read-only root, 256 MiB, 10 s, schemas)."""
    return config(
        PYTHON_IMAGE,
        files={"/app/execute.py": STATS},
        network=False,
        read_only=True,
        memory_bytes=256 * MiB,
        timeout=10.0,
        schema_in=INPUT_SCHEMA,
        schema_out=OUTPUT_SCHEMA,
    )


async def test_seed_example_with_explicit_types() -> None:
    """ContainerExecutor(config, input_type=Input, output_type=Output) computes the stats."""
    cfg = seed_config()
    async with ContainerExecutor(cfg, input_type=Input, output_type=Output) as ex:
        output = await ex.execute(Input(values=[1, 2, 3, 4, 5]))
    assert output == Output(count=5, sum=15.0, mean=3.0)


async def test_seed_example_with_the_subscripted_spelling() -> None:
    """ContainerExecutor[Input, Output](config) converts plain data in and Structs out."""
    async with ContainerExecutor[Input, Output](seed_config()) as ex:
        output = await ex.execute({"values": [2.0, 4.0]})
        assert isinstance(output, Output)
        assert output == Output(count=2, sum=6.0, mean=3.0)
        # The schema is enforced before any container: minItems=1.
        with pytest.raises(InputValidationError) as info:
            await ex.execute({"values": []})
    assert info.value.path == "$.values"


async def test_run_reports_container_metadata(make_executor: MakeExecutor) -> None:
    """run() returns the output with container id, image, engine and phase timings.

    ``exit_code`` is None: the answer is taken without waiting for the container to exit
    (the runner's log marker tells when the logs are complete).
    """
    labels = case()
    ex = make_executor(files={"/app/execute.py": STATS}, labels=labels, output_type=Output)
    result = await ex.run({"values": [1.0, 3.0]})
    assert isinstance(result, Execution)
    assert result.output == Output(count=2, sum=4.0, mean=2.0)
    assert result.container_id is not None
    assert re.fullmatch(r"[0-9a-f]{64}", result.container_id)
    assert result.exit_code is None
    assert result.image == PYTHON_IMAGE
    assert result.engine == ex.engine.name
    assert {"create", "attach", "start", "call", "validate_out"} <= set(result.timings)
    assert all(v >= 0 for v in result.timings.values())
    assert sum(result.timings.values()) <= result.duration
    assert result.logs == ""
    assert result.logs_truncated is False
    await ex.aclose()  # not inside `async with`: the removal was inline, already done
    assert containers(labels) == []
