"""Pydantic models as the types of a ContainerExecutor against the real engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel, Field

from executor import InputValidationError, OutputValidationError

if TYPE_CHECKING:
    from .conftest import MakeExecutor

pytestmark = pytest.mark.docker

STATS = """
def execute(input):
    values = input["values"]
    if input.get("break_output"):
        return {"count": "many"}
    return {"count": len(values), "sum": sum(values), "mean": sum(values) / len(values)}
"""


class Input(BaseModel):
    values: list[float] = Field(min_length=1)
    break_output: bool = Field(default=False, alias="breakOutput")


class Output(BaseModel):
    count: int
    sum: float
    mean: float


@pytest.mark.parametrize("mode", [{}, {"mode": "fork", "containers": 1}], ids=["fresh", "fork"])
async def test_models_in_and_out(make_executor: MakeExecutor, mode: dict[str, Any]) -> None:
    """A model goes out as its JSON, the answer comes back as the output model; input and
    output errors carry pydantic's field paths."""
    ex = make_executor(
        files={"/app/execute.py": STATS.replace('"break_output"', '"breakOutput"')},
        input_type=Input,
        output_type=Output,
        **mode,
    )
    async with ex:
        output = await ex.execute(Input(values=[1, 2, 3]))
        assert output == Output(count=3, sum=6.0, mean=2.0)
        assert (await ex.execute({"values": [4]})).mean == 4.0
        with pytest.raises(InputValidationError) as info:
            await ex.execute({"values": []})
        assert info.value.path == "$.values"
        with pytest.raises(OutputValidationError) as out:
            await ex.execute({"values": [1], "breakOutput": True})
        assert out.value.path == "$.count"
