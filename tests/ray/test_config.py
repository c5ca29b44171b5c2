"""The config travels to the nodes as plain data: nothing to refuse, nothing lost on the way."""

from __future__ import annotations

import pytest

from executor import ContainerConfig, EngineEndpoint


def test_the_worker_config_crosses_to_the_nodes_intact() -> None:
    """What each actor receives survives Ray's serializer equal, mode and engines included."""
    ray = pytest.importorskip("ray")
    from executor.ray import RayExecutor

    config = ContainerConfig(
        "executor/runner-python:latest",
        mode="fork",
        containers=2,
        engines=["unix:///var/run/docker.sock", EngineEndpoint(url="tcp://h:2376", capacity=2)],
    )
    sent = RayExecutor(config)._worker_config
    assert ray.cloudpickle.loads(ray.cloudpickle.dumps(sent)) == sent
    assert (sent.mode, sent.containers, sent.engines) == ("fork", 2, config.engines)
