"""The seccomp profile the executor sends under gVisor, as a file for ``docker run``.

With runsc registered with ``--oci-seccomp`` (``make engine``), a profile applies inside the
sandbox too, and runsc answers every errno rule EPERM: Docker's own default profile (and the
library's plain one) would refuse ``clone3`` with EPERM there, and no thread could start. The
executor sends the gVisor form (``clone3`` left to gVisor's kernel); ``docker run`` in these
tests must do the same.
"""

from __future__ import annotations

import atexit
import functools
import os
import tempfile

from executor.container.config import _gvisor_profile


@functools.cache
def gvisor_profile_file() -> str:
    """The path of a file holding the gVisor form of the library's profile (removed at exit)."""
    fd, path = tempfile.mkstemp(prefix="executor-gvisor-seccomp-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        fh.write(_gvisor_profile())
    os.chmod(path, 0o644)
    atexit.register(os.unlink, path)
    return path
