"""Pydantic (v2) models as input and output types: conversion, validation, schemas and error
paths through pydantic, in LocalExecutor and (over the fake engine) ContainerExecutor."""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated, Any

import msgspec
import pytest
from pydantic import BaseModel, Field, field_validator

from executor import (
    ContainerConfig,
    ContainerExecutor,
    InputValidationError,
    LocalConfig,
    LocalExecutor,
    OutputValidationError,
)
from executor._schema import Codec, is_pydantic
from executor.testing import FakeEngine


class Item(BaseModel):
    name: str
    quantity: int = Field(ge=1)
    tags: list[str] = []


class Order(BaseModel):
    order_id: int = Field(alias="orderId")
    items: list[Item]

    @field_validator("items")
    @classmethod
    def not_empty(cls, items: list[Item]) -> list[Item]:
        if not items:
            raise ValueError("an order needs an item")
        return items


class Total(BaseModel):
    order_id: int
    count: int


def total(order: Order) -> Total:
    return Total(order_id=order.order_id, count=sum(i.quantity for i in order.items))


ORDER = {"orderId": 7, "items": [{"name": "pen", "quantity": 2}, {"name": "ink", "quantity": 3}]}


def test_pydantic_types_are_recognised() -> None:
    """Models, containers of models and Annotated pydantic fields go through pydantic; plain
    and msgspec types do not."""
    assert is_pydantic(Order) and is_pydantic(list[Order]) and is_pydantic(dict[str, Item])
    assert is_pydantic(Annotated[int, Field(gt=0)])
    assert not is_pydantic(int) and not is_pydantic(list[dict[str, int]])
    assert not is_pydantic(msgspec.Struct)


async def test_local_executor_converts_and_validates_with_pydantic() -> None:
    """A dict becomes the model (aliases honoured), the function's model output is checked,
    and the schemas are pydantic's JSON Schemas."""
    async with LocalExecutor(total) as ex:
        output = await ex.execute(ORDER)
        assert output == Total(order_id=7, count=5)
        assert await ex.execute(Order.model_validate(ORDER)) == output
        assert ex.schema_in is not None and "orderId" in ex.schema_in["properties"]
        assert ex.schema_in["$defs"]["Item"]["properties"]["quantity"]["minimum"] == 1
        assert ex.schema_out == Total.model_json_schema()


@pytest.mark.parametrize(
    ("value", "path", "reason"),
    [
        (
            {"orderId": 7, "items": [{"name": "pen", "quantity": 0}]},
            "$.items[0].quantity",
            "greater than or equal to 1",
        ),
        ({"orderId": "seven", "items": []}, "$.orderId", "valid integer"),
        ({"orderId": 7, "items": []}, "$.items", "an order needs an item"),
        ({"items": []}, "$.orderId", "Field required"),
    ],
)
async def test_input_errors_carry_the_field_path(value: Any, path: str, reason: str) -> None:
    """A pydantic validation failure is InputValidationError with a `$.a.b[0]` path."""
    ex = LocalExecutor(total)
    with pytest.raises(InputValidationError) as info:
        await ex.execute(value)
    assert info.value.path == path
    assert reason in info.value.reason
    assert info.value.code == "INPUT_INVALID"


async def test_output_errors_carry_the_field_path() -> None:
    """A function returning data its output model refuses is OutputValidationError."""
    ex = LocalExecutor[Order, Total](lambda order: {"order_id": 1, "count": "many"})
    with pytest.raises(OutputValidationError) as info:
        await ex.execute(ORDER)
    assert info.value.path == "$.count"


async def test_explicit_schema_checks_the_json_form_too() -> None:
    """With an explicit schema, pydantic converts and the schema checks the model's JSON form
    (by alias): a value pydantic accepts but the schema refuses is refused."""
    schema = {"type": "object", "properties": {"orderId": {"maximum": 5}}}
    ex = LocalExecutor(total, LocalConfig(schema_in=schema))
    with pytest.raises(InputValidationError) as info:
        await ex.execute(ORDER)
    assert info.value.path == "$.orderId"


async def test_container_executor_over_the_fake_engine() -> None:
    """ContainerExecutor sends a model as its JSON (by alias) and decodes the runner's output
    into the output model through pydantic; errors map as locally."""
    seen: list[Any] = []

    def runner(data: Any) -> Any:
        seen.append(data)
        return {"order_id": data["orderId"], "count": len(data["items"])}

    engine = FakeEngine(runner)
    config = ContainerConfig("fake/runner:latest")
    async with ContainerExecutor[Order, Total](config, engine=engine) as ex:
        assert await ex.execute(Order.model_validate(ORDER)) == Total(order_id=7, count=2)
        assert seen[0]["orderId"] == 7 and seen[0]["items"][0]["tags"] == []
        with pytest.raises(InputValidationError) as info:
            await ex.execute({"orderId": 1, "items": [{"name": "x", "quantity": -1}]})
        assert info.value.path == "$.items[0].quantity"
    bad = FakeEngine(lambda data: {"order_id": "x", "count": 1})
    async with ContainerExecutor[Order, Total](config, engine=bad) as ex:
        with pytest.raises(OutputValidationError) as out:
            await ex.execute(ORDER)
        assert out.value.path == "$.order_id"
    garbled = FakeEngine(lambda data: "not an object")
    async with ContainerExecutor[Order, Total](config, engine=garbled) as ex:
        with pytest.raises(OutputValidationError) as out:
            await ex.execute(ORDER)
        assert out.value.path == "$"


def test_codec_decodes_json_through_pydantic() -> None:
    """decode_json uses pydantic's JSON parser: invalid JSON is OutputValidationError."""
    codec: Codec[Total] = Codec(Total, None, which="out")
    assert codec.decode_json(b'{"order_id": 1, "count": 2}') == Total(order_id=1, count=2)
    with pytest.raises(OutputValidationError, match="not valid JSON"):
        codec.decode_json(b"{nope")


def test_import_executor_does_not_import_pydantic() -> None:
    """`import executor` (and a LocalExecutor of plain types) never imports pydantic."""
    code = (
        "import sys, executor\n"
        "executor.LocalExecutor[int, int](lambda n: n)\n"
        "print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
