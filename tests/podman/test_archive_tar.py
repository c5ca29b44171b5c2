"""The archive sent to ``PUT /containers/{id}/archive`` has no padding after its end marker
(no engine needed): Podman's copier stops reading at the marker, and padding still being
written then fails the request (containers/buildah#6573)."""

from __future__ import annotations

import io
import tarfile

import pytest

from executor.engine.docker import _tar

CASES = [
    {"/app/execute.py": b"def execute(input):\n    return input\n"},
    {"/a/b/c.txt": b"", "/z.bin": bytes(range(256)) * 80, "/a/d.txt": b"d" * 512},
    {},
]


@pytest.mark.parametrize("files", CASES, ids=["one", "nested", "empty"])
def test_the_archive_ends_at_its_end_marker_and_holds_every_file(files: dict[str, bytes]) -> None:
    data = _tar(files)
    # Members in whole blocks, then exactly the two zero blocks: nothing after them.
    assert len(data) % 512 == 0
    assert data[-1024:] == bytes(1024)
    assert data[-1536:-1024] != bytes(512) or len(data) == 1024
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for path, content in files.items():
            member = tar.extractfile(path.strip("/"))
            assert member is not None
            assert member.read() == content
        assert {m.name for m in tar.getmembers() if m.isfile()} == {p.strip("/") for p in files}
