"""``ContainerConfig.requirements``: what is refused when the config is made, the cache key,
and how a failed build names its requirement."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from executor import ConfigError, ContainerConfig
from executor.container.deps import _failure, _Spec
from executor.container.requirements import deps_key, normalized, runner_of

if TYPE_CHECKING:
    from pathlib import Path

PY = "executor/runner-python:latest"
NODE = "executor/runner-node:latest"


@pytest.mark.parametrize("bad", ["numpy===", "numpy>=>1", "-e .", "num py", "numpy[", ""])
def test_malformed_pip_requirement_is_a_config_error(bad: str) -> None:
    """A requirement pip could not parse is refused with ConfigError before anything runs."""
    with pytest.raises(ConfigError, match="is not a pip requirement"):
        ContainerConfig(PY, requirements=["attrs", bad])


@pytest.mark.parametrize(
    "bad",
    [
        "Lodash",
        "lodash @4",
        "@scope",
        "../x.tgz",
        "",
        "lodash@",
        "lodash@@4",
        "lodash@4@5",
        "lodash@^",
        "lodash@4||",
        "lodash@>=",
        "x@npm:",
        "x@npm:Lodash",
        "x@file:../y.tgz",
    ],
)
def test_malformed_npm_spec_is_a_config_error(bad: str) -> None:
    """An npm spec that is not a package name, optionally with '@' and a version, range, tag,
    alias or URL, is refused at once, not when npm fails at build time."""
    with pytest.raises(ConfigError, match="npm package spec"):
        ContainerConfig(NODE, requirements=[bad])


@pytest.mark.parametrize(
    "good",
    [
        "lodash",
        "lodash@4",
        "lodash@4.17.21",
        "lodash@^4.17.0",
        "lodash@~4.17",
        "lodash@>=4.0.0",
        "lodash@4.x",
        "lodash@*",
        "lodash@1.x||2.x",
        "lodash@5.0.0-beta.1",
        "lodash@latest",
        "@types/node@20",
        "@scope/name@1",
        "my-lodash@npm:lodash@4",
        "x@npm:@scope/name",
        "x@git+https://github.com/lodash/lodash.git#4.17.21",
        "x@github:lodash/lodash#4.17.21",
        "ms@https://registry.npmjs.org/ms/-/ms-2.1.3.tgz",
    ],
)
def test_npm_specs_npm_takes_are_accepted(good: str) -> None:
    """Versions, ranges, tags, scoped names, aliases and URLs pass the check unchanged."""
    ContainerConfig(NODE, requirements=[good])
    assert normalized("node", [f" {good} "]) == [good]


def test_go_image_refuses_requirements() -> None:
    """A Go image has no installer at run time: requirements there are a ConfigError."""
    with pytest.raises(ConfigError, match="static binary"):
        ContainerConfig("executor/runner-go:latest", requirements=["x"])


def test_other_bad_settings(tmp_path: Path) -> None:
    """A string instead of a list, both sources at once, a missing or wrong-kind file and a
    bad build_timeout are each refused with a message naming the setting."""
    with pytest.raises(ConfigError, match="list of strings"):
        ContainerConfig(PY, requirements="numpy")  # type: ignore[arg-type]
    req = tmp_path / "requirements.txt"
    req.write_text("attrs>=23  # comment\n--index-url https://example.invalid/simple\n")
    with pytest.raises(ConfigError, match="not both"):
        ContainerConfig(PY, requirements=["x"], requirements_file=str(req))
    with pytest.raises(ConfigError, match="is no file"):
        ContainerConfig(PY, requirements_file=str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match=r"package\.json"):
        ContainerConfig(NODE, requirements_file=str(req))
    with pytest.raises(ConfigError, match="build_timeout"):
        ContainerConfig(PY, requirements=["attrs"], build_timeout=0)
    req.write_text("attrs\nnot a requirement!\n")
    with pytest.raises(ConfigError, match="not a pip requirement"):
        ContainerConfig(PY, requirements_file=str(req))


def test_runner_from_image_name() -> None:
    """The runner is told from the image's name, and None when it does not say."""
    assert runner_of(PY) == "python"
    assert runner_of("me/runner-node:1") == "node"
    assert runner_of("python:3.12-slim") == "python"
    assert runner_of("executor/runner-go") == "go"
    assert runner_of("me/tasks:latest") is None


def test_cache_key_ignores_order_and_spelling_but_not_content(tmp_path: Path) -> None:
    """Requirements in another order or spelling give the same image; another base, installer
    or file content gives another."""
    a = normalized("python", ["numpy >= 2", "Attrs", "Auditz_Top == 0.1"])
    b = normalized("python", ["Attrs", "numpy>=2", "auditz-top==0.1", "auditz.top==0.1"])
    assert a == b == ["attrs", "auditz-top==0.1", "numpy>=2"]
    key = deps_key("python", "sha256:1", "linux/amd64", "pip 26", a, None, False)
    assert key == deps_key("python", "sha256:1", "linux/amd64", "pip 26", b, None, False)
    assert key != deps_key("python", "sha256:2", "linux/amd64", "pip 26", a, None, False)
    assert key != deps_key("python", "sha256:1", "linux/amd64", "pip 25", a, None, False)
    req = tmp_path / "requirements.txt"
    req.write_text("attrs\n")
    first = deps_key("python", "sha256:1", "linux/amd64", "pip 26", [], req, False)
    req.write_text("attrs==23.1\n")
    assert first != deps_key("python", "sha256:1", "linux/amd64", "pip 26", [], req, False)


def test_included_files_are_part_of_the_key(tmp_path: Path) -> None:
    """A file a requirements.txt includes with -r or -c (relative to it, recursively) counts
    in the cache key by content: editing it makes another image."""
    (tmp_path / "sub").mkdir()
    req = tmp_path / "requirements.txt"
    req.write_text("-r sub/base.txt\n--constraint=sub/pins.txt\n")
    base = tmp_path / "sub" / "base.txt"
    base.write_text("attrs\n-rmore.txt\n")
    (tmp_path / "sub" / "more.txt").write_text("# nothing yet\n-r base.txt\n")  # a cycle
    (tmp_path / "sub" / "pins.txt").write_text("attrs<99\n")
    ContainerConfig(PY, requirements_file=str(req))

    def key() -> str:
        return deps_key("python", "sha256:1", "linux/amd64", "pip 26", [], req, False)

    first = key()
    assert first == key()
    for name in ("base.txt", "more.txt", "pins.txt"):
        path = tmp_path / "sub" / name
        path.write_text(path.read_text() + "six\n")
        assert key() != first, name
        first = key()


def test_bad_includes_are_config_errors(tmp_path: Path) -> None:
    """An included file that is missing, a URL include and a malformed line in an included
    file are refused when the config is made, naming the include."""
    req = tmp_path / "requirements.txt"
    req.write_text("attrs\n-r missing.txt\n")
    with pytest.raises(ConfigError, match=r"includes 'missing\.txt' \(-r\).*is no file"):
        ContainerConfig(PY, requirements_file=str(req))
    req.write_text("--requirement https://example.invalid/reqs.txt\n")
    with pytest.raises(ConfigError, match=r"includes the URL.*inline its lines"):
        ContainerConfig(PY, requirements_file=str(req))
    (tmp_path / "other.txt").write_text("not a requirement!\n")
    req.write_text("-r other.txt\n")
    with pytest.raises(ConfigError, match="not a pip requirement"):
        ContainerConfig(PY, requirements_file=str(req))


def test_canonical_names_keep_extras_markers_and_urls() -> None:
    """Only the project name is canonicalised (PEP 503); what pip reads besides it is kept."""
    assert normalized("python", ["Foo.Bar[Extra_X] >= 1 ; python_version > '3'"]) == [
        'foo-bar[Extra_X]>=1; python_version > "3"'
    ]
    assert normalized("python", ["Zope.Interface @ https://example.com/z.whl"]) == [
        "zope-interface @ https://example.com/z.whl"
    ]


@pytest.mark.parametrize(
    ("output", "named"),
    [
        (
            "npm error code ETARGET\n"
            "npm error notarget No matching version found for lodash@99.99.99.\n"
            "npm error notarget In most cases you or one of your dependencies are requesting\n",
            "lodash@99.99.99",
        ),
        (
            "ERROR: Could not find a version that satisfies the requirement attrs==0.0.1 "
            "(from versions: 23.1.0)\nERROR: No matching distribution found for attrs==0.0.1\n",
            "attrs==0.0.1",
        ),
        ("something went wrong\n", "a@1, b@2"),
    ],
)
def test_build_failure_names_the_requirement_the_installer_names(output: str, named: str) -> None:
    """ImageBuildFailed names the requirement as the installer wrote it, without the period
    ending npm's sentence; all of them when the installer names none."""
    spec = _Spec("node", ["a@1", "b@2"], None, False)
    failure = _failure(output, spec, NODE, NODE)
    assert failure.message.startswith(f"cannot install {named!r} into {NODE}")
