"""Building the executor images from ``docker-bake.hcl`` through the Engine API.

Outside the runtime import path: nothing here is imported until something builds (``executor
images build``, ``make images``, ``missing_image="build"``). ``bake`` reads the bake file,
``context`` packs build contexts, ``builder`` builds through an engine's image interface.
In a checkout the bake file and contexts are the checkout's own; an installed wheel carries
copies in ``executor/_data/``. Command line (what ``make images`` runs)::

    executor images build [TARGET ...] [--set VAR=VALUE ...] [--force] [--quiet]
"""

from .bake import DEFAULT_BAKE_FILE as DEFAULT_BAKE_FILE
from .bake import TargetSpec as TargetSpec
from .bake import load_bake as load_bake
from .bake import resolve_targets as resolve_targets
from .builder import CONTEXT_HASH_LABEL as CONTEXT_HASH_LABEL
from .builder import DEFAULT_LOCAL_BASES as DEFAULT_LOCAL_BASES
from .builder import build_for_image as build_for_image
from .builder import build_images as build_images

__all__ = (
    "CONTEXT_HASH_LABEL",
    "DEFAULT_BAKE_FILE",
    "DEFAULT_LOCAL_BASES",
    "TargetSpec",
    "build_for_image",
    "build_images",
    "load_bake",
    "resolve_targets",
)
