"""Without Ray installed, the Ray backend fails with ConfigError naming the extra; the core
package never imports Ray at all."""

from __future__ import annotations

import subprocess
import sys

import pytest

from executor import ConfigError, ContainerConfig


def test_ray_missing_raises_config_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With `import ray` failing, RayExecutor raises ConfigError naming typed-executor[ray]."""
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    from executor.ray import RayExecutor

    with pytest.raises(ConfigError) as info:
        RayExecutor(ContainerConfig("executor/runner-python:latest"))
    assert info.value.code == "CONFIG_INVALID"
    assert "typed-executor[ray]" in str(info.value)


def test_import_executor_and_executor_ray_do_not_import_ray() -> None:
    """`import executor` and `import executor.ray` leave ray unimported (it loads on use)."""
    code = "import sys, executor, executor.ray; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
