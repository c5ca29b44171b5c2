"""The public faces, ``executor`` and ``executor.engine``: ``__all__`` is exactly what each
exports, and each exported class and function is named after the package."""

from __future__ import annotations

import pickle
import types

import pytest

import executor
import executor.engine

PACKAGES = [executor, executor.engine]


@pytest.fixture(params=PACKAGES, ids=lambda package: package.__name__)
def package(request: pytest.FixtureRequest) -> types.ModuleType:
    return request.param  # type: ignore[no-any-return]


def isort_order(name: str) -> tuple[int, str]:
    """ruff's order for ``__all__`` (RUF022): constants, then classes, then functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def test_all_is_a_sorted_tuple(package: types.ModuleType) -> None:
    """``__all__`` is a tuple kept in ruff's sorted order, without duplicates."""
    assert isinstance(package.__all__, tuple)
    assert list(package.__all__) == sorted(set(package.__all__), key=isort_order)


def test_every_name_in_all_is_exported(package: types.ModuleType) -> None:
    """Every name listed in ``__all__`` is an attribute of the package (the lazy ones load)."""
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert missing == []


def test_every_public_attribute_is_in_all(package: types.ModuleType) -> None:
    """Every public non-module attribute of the package (besides ``__version__``), the lazy
    ones loaded, is in ``__all__``."""
    for name in package.__all__:
        getattr(package, name)
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(package.__all__)
    assert set(package.__all__) <= set(dir(package))


def test_every_class_and_function_is_named_after_the_package(package: types.ModuleType) -> None:
    """Each exported class and function shows as ``package.X`` in reprs and tracebacks (as
    ``executor.engine.Engine``, not ``executor.engine.base.Engine``), and pickles by that name."""
    named = {
        name: value.__module__
        for name in package.__all__
        if isinstance(value := getattr(package, name), (type, types.FunctionType))
    }
    assert named and named == dict.fromkeys(named, package.__name__)
    for name in named:
        assert pickle.loads(pickle.dumps(getattr(package, name))) is getattr(package, name)


def test_engine_names_read_as_the_extension_point() -> None:
    """The engine seam's classes read ``executor.engine.X``; its plain-data answers pickle."""
    from executor.engine import Engine, EngineInfo, ExitState

    assert repr(Engine) == "<class 'executor.engine.Engine'>"
    state = ExitState(running=False, exit_code=0, oom_killed=False)
    assert pickle.loads(pickle.dumps(state)) == state
    info = EngineInfo("e", "fake", "1", "1.43", 2)
    assert pickle.loads(pickle.dumps(info)) == info
