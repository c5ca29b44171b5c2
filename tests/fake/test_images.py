"""Derived ``files`` images on the fake engine: pruned when unused, derived again when needed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from executor.container.images import prune_files_images
from executor.testing import FakeEngine

if TYPE_CHECKING:
    from .conftest import Make


def echo(value: object) -> object:
    return value


async def pruned(engine: FakeEngine, **options: Any) -> list[tuple[str, bool]]:
    return [(i.ref, i.removed) async for i in prune_files_images(engine, **options)]


async def test_prune_keeps_images_in_use_and_an_executor_derives_again(make: Make) -> None:
    engine = FakeEngine(echo, images={"fake/runner:latest", "other:latest"})
    fresh = make(engine, files={"/app/a.py": "a"})
    pooled = make(engine, files={"/app/b.py": "b"}, mode="reuse", containers=1)
    assert await fresh.execute(1) == 1
    assert await pooled.execute(2) == 2
    derived = {ref for ref in engine.images.present or () if ref.startswith("executor-files/")}
    assert len(derived) == 2

    assert await pruned(engine, older_than=3600) == [], "both are younger than an hour"
    dry = await pruned(engine, dry_run=True)
    assert sorted(removed for _, removed in dry) == [False, True]
    result = dict(await pruned(engine))
    assert sorted(result.values()) == [False, True], "the pooled container's image stays"
    assert {ref for ref, removed in result.items() if removed} < derived
    assert await pruned(engine, base="other:latest") == []

    assert await fresh.execute(3) == 3, "the removed image is derived again"
    assert await pooled.execute(4) == 4
    assert {r for r in engine.images.present or () if r.startswith("executor-files/")} == derived
