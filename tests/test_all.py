"""The package root's public surface: ``executor.__all__`` is exactly what it exports."""

from __future__ import annotations

import types

import executor


def test_all_is_a_sorted_tuple() -> None:
    """``__all__`` is a tuple kept in sorted order, without duplicates."""
    assert isinstance(executor.__all__, tuple)
    assert list(executor.__all__) == sorted(set(executor.__all__))


def test_every_name_in_all_is_exported() -> None:
    """Every name listed in ``__all__`` is an attribute of the package root."""
    missing = [name for name in executor.__all__ if not hasattr(executor, name)]
    assert missing == []


def test_every_public_attribute_is_in_all() -> None:
    """Every public non-module attribute of the root (besides ``__version__``) is in ``__all__``."""
    public = {
        name
        for name, value in vars(executor).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(executor.__all__)
