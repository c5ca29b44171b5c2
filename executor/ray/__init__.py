"""Run container calls on the nodes of a Ray cluster: :class:`RayExecutor`.

Behind the extra ``typed-executor[ray]`` (``pip install 'typed-executor[ray]'``);
``import executor`` never imports Ray, and this module imports it only when a
:class:`RayExecutor` is made, raising :class:`~executor.ConfigError` naming the extra when Ray
is missing.

Each node of the cluster gets an async Ray actor owning a :class:`~executor.ContainerExecutor`
on that node's Docker engine; the caller validates inputs, sends them in chunks to the
least-loaded actor and decodes outputs. See ``docs/scale-out.md``.
"""

from ._executor import RayExecutor as RayExecutor

__all__ = ("RayExecutor",)
