"""``.dockerignore`` rules, pinned against Docker's documentation and moby's own test tables.

The tables are ported from moby's ``patternmatcher_test.go`` (``TestMatches``, ``TestCompile``,
Go's ``filepath.Match`` cases in ``matchTests``) and ``ignorefile_test.go``; the documentation
cases from https://docs.docker.com/build/concepts/context/#dockerignore-files.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor import ConfigError
from executor.build.dockerignore import DockerIgnore, _read_patterns, _to_go_regexp

if TYPE_CHECKING:
    from pathlib import Path


def excluded(patterns: list[str], path: str) -> bool:
    return DockerIgnore(patterns).excluded(path)


# -- moby: TestMatches -----------------------------------------------------------------------

MOBY_MATCHES = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),
    ("**/", "file/", True),
    ("**", "/", True),
    ("**/", "/", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("**", "dir/file/", True),
    ("**/", "dir/file/", True),
    ("**/**", "dir/file", True),
    ("**/**", "dir/file/", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/file/", True),
    ("dir/**", "dir/dir2/file", True),
    ("dir/**", "dir/dir2/file/", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        True,
    ),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\*b", "a*b", True),
]

MOBY_MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (
        ["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        False,
    ),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    # TestWildcardMatches .. TestExclusionPatternMatchesPatternAfter
    (["*"], "fileutils.go", True),
    (["*.go"], "fileutils.go", True),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["*.go"], ".", False),
    ([], "/any/path/there", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), MOBY_MATCHES)
def test_moby_single_pattern_table(pattern: str, path: str, expected: bool) -> None:
    """Every case of moby's TestMatches table decides as moby does."""
    assert excluded([pattern], path) is expected


@pytest.mark.parametrize(("patterns", "path", "expected"), MOBY_MULTI)
def test_moby_multi_pattern_table(patterns: list[str], path: str, expected: bool) -> None:
    """moby's multi-pattern and exclusion-order cases: the last matching pattern decides."""
    assert excluded(patterns, path) is expected


# -- moby: TestCompile -------------------------------------------------------------------------

MOBY_COMPILE = [
    ("*", "regexp", r"^[^/]*$"),
    ("file*", "regexp", r"^file[^/]*$"),
    ("*file", "regexp", r"^[^/]*file$"),
    ("a*/b", "regexp", r"^a[^/]*/b$"),
    ("**", "suffix", None),
    ("**/**", "regexp", r"^(.*/)?.*$"),
    ("dir/**", "prefix", None),
    ("**/dir", "suffix", None),
    ("**/dir2/*", "regexp", r"^(.*/)?dir2/[^/]*$"),
    ("**/dir2/**", "regexp", r"^(.*/)?dir2/.*$"),
    ("**file", "suffix", None),
    ("**/file*txt", "regexp", r"^(.*/)?file[^/]*txt$"),
    ("**/**/*.txt", "regexp", r"^(.*/)?(.*/)?[^/]*\.txt$"),
    ("a[b-d]e", "regexp", r"^a[b-d]e$"),
    (".*", "regexp", r"^\.[^/]*$"),
    ("abc.def", "exact", None),
    ("abc?def", "regexp", r"^abc[^/]def$"),
    ("**/foo/bar", "suffix", None),
    ("a(b)c/def", "exact", None),
    ("a.|)$(}+{bc", "exact", None),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "exact", None),
]


@pytest.mark.parametrize(("pattern", "kind", "expression"), MOBY_COMPILE)
def test_moby_compile_table(pattern: str, kind: str, expression: str | None) -> None:
    """A glob becomes the same kind of match, and the same Go expression, as in moby."""
    got_kind, got_expression = _to_go_regexp(pattern)
    assert got_kind == kind
    if expression is not None:
        assert got_expression == expression


# -- Go's filepath.Match cases (moby's matchTests) -------------------------------------------

GO_MATCH = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", True),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),  # noqa: RUF001 - Go's own case: a Greek alpha
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("*x", "xxx", True),
]

GO_BAD_PATTERNS = [
    "[]a]",
    "[-]",
    "[x-]",
    "[-x]",
    "\\",
    "[a-b-c]",
    "[",
    "[^",
    "[^bc",
    "a[",
    "!",
    "! ",
    "!/",  # cleaned to a lone "!"
    "[Local-Only]/",  # moby#52203: l-O is a backwards range for Go's regexp
    "*[z-a]",
]


@pytest.mark.parametrize(("pattern", "path", "expected"), GO_MATCH)
def test_go_filepath_match_table(pattern: str, path: str, expected: bool) -> None:
    """The filepath.Match cases moby runs its matcher through decide the same here."""
    assert excluded([pattern], path) is expected


@pytest.mark.parametrize("pattern", GO_BAD_PATTERNS)
def test_malformed_pattern_is_a_config_error(pattern: str) -> None:
    """A pattern Docker rejects (and fails the build on) raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="pattern"):
        DockerIgnore.from_text(pattern + "\n")


# -- moby: ignorefile.ReadAll ----------------------------------------------------------------


def test_read_all_like_moby() -> None:
    """Comments, blank lines, trimming, leading slashes and '!' are read as ReadAll reads them."""
    text = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n"
    text += "! /inverted/abs/path\n!\n! "
    assert _read_patterns(text) == [
        "test1",
        "test2",
        "a/file/here",
        "lastfile",
        "!inverted/abs/path",
        "!",
        "!",
    ]


@pytest.mark.parametrize(
    ("text", "patterns"),
    [
        ("\ufeff# comment\nfoo\n", ["foo"]),  # a BOM is dropped before the comment check
        ("  # not a comment\n", ["# not a comment"]),  # only column 1 starts a comment
        ("foo \t\r\n  bar\r\n", ["foo", "bar"]),
        ("./foo/\n", ["foo"]),
        ("a//b/../c/.\n", ["a/c"]),
        ("/\n", ["/"]),
        ("!./docs\n", ["!docs"]),
        ("../a\n", ["../a"]),
        ("foo\u00a0\n", ["foo"]),  # Go trims Unicode spaces
        ("foo\x1f\n", ["foo\x1f"]),  # ... but not the ASCII unit separator, unlike str.strip
    ],
)
def test_lines_are_read_and_cleaned_like_docker(text: str, patterns: list[str]) -> None:
    """Each line is trimmed and cleaned as Docker does (Go's TrimSpace and filepath.Clean)."""
    assert list(DockerIgnore.from_text(text).patterns) == patterns


def test_a_line_over_64_kib_is_an_error() -> None:
    """Docker's line scanner stops at 64 KiB; so does this reader, with an error."""
    DockerIgnore.from_text("a" * 65535)
    with pytest.raises(ConfigError, match="64 KiB"):
        DockerIgnore.from_text("a" * 65536)


# -- Docker's documentation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "included", "excluded_paths"),
    [
        # "/foo/bar and foo/bar both exclude a file or directory named bar in foo ...
        (["/foo/bar"], ["bar", "x/foo/bar", "foo/baz"], ["foo/bar", "foo/bar/x"]),
        (["foo/bar"], ["bar", "x/foo/bar"], ["foo/bar", "foo/bar/x"]),
        # the comment, */temp*, */*/temp*, temp? example
        (["# comment"], ["# comment"], []),
        (
            ["*/temp*"],
            ["temporary.txt", "somedir/subdir/temporary.txt"],
            ["somedir/temporary.txt", "somedir/temp", "somedir/temp/x"],
        ),
        (["*/*/temp*"], ["somedir/temporary.txt"], ["somedir/subdir/temporary.txt"]),
        (["temp?"], ["temp", "tempab", "dir/tempa"], ["tempa", "tempb"]),
        # ** matches any number of directories, zero included
        (["**/*.go"], ["main.py", "go"], ["main.go", "cmd/main.go", "a/b/c/main.go"]),
        # exceptions
        (["*.md", "!README.md"], ["README.md", "docs/a.md"], ["CHANGES.md"]),
        (
            ["*.md", "!README*.md", "README-secret.md"],
            ["README.md", "README-public.md"],
            ["README-secret.md", "CHANGES.md"],
        ),
        (
            ["*.md", "README-secret.md", "!README*.md"],
            ["README.md", "README-secret.md"],
            ["CHANGES.md"],
        ),
        # exclude everything, then list what is included
        (["*", "!src", "!Dockerfile"], ["src", "src/a/b.py", "Dockerfile"], ["tests/x.py", "a"]),
        # "." is never matched (the context itself cannot be excluded)
        (["."], ["a", "a/b"], []),
    ],
)
def test_docker_documentation_examples(
    patterns: list[str], included: list[str], excluded_paths: list[str]
) -> None:
    """Each example of Docker's .dockerignore documentation includes and excludes as stated."""
    ignore = DockerIgnore.from_text("\n".join(patterns))
    assert [p for p in included if ignore.excluded(p)] == []
    assert [p for p in excluded_paths if not ignore.excluded(p)] == []


def test_star_md_stays_at_the_root_unlike_fnmatch() -> None:
    """``*.md`` excludes README.md but not docs/a.md: ``*`` does not cross ``/``."""
    ignore = DockerIgnore.from_text("*.md\n")
    assert ignore.excluded("README.md")
    assert not ignore.excluded("docs/a.md")
    assert DockerIgnore.from_text("**/*.md\n").excluded("docs/a.md")


def test_excluded_directory_with_re_included_children() -> None:
    """A child of an excluded directory comes back through a later exception, and a later
    exclusion takes part of it away again."""
    ignore = DockerIgnore.from_text("*\n!docs\ndocs/*.tmp\n")
    assert ignore.excluded("x")
    assert not ignore.excluded("docs")
    assert not ignore.excluded("docs/a")
    assert ignore.excluded("docs/a.tmp")
    assert not ignore.excluded("docs/sub/a.tmp")  # *.tmp does not cross /


def test_paths_are_cleaned_before_matching() -> None:
    """A path is cleaned like Go's filepath.Clean: ``./a``, ``a/`` and ``a/b/..`` are ``a``."""
    ignore = DockerIgnore(["a"])
    assert all(ignore.excluded(p) for p in ["a", "./a", "a/", "a/b/..", "a//b"])
    assert not ignore.excluded(".")


# -- moby's quirks, kept -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        # moby's escape table drops | { }: a | in a wildcard pattern splits it into
        # alternatives (here: "*.md" or an empty match, so everything)
        ("*.md|", ["a.md", "docs/b.txt", "x"], []),
        # ... and a { that is not a repeat count stays literal
        ("*.{js,ts}", ["a.{js,ts}"], ["a.js", "x/a.{js,ts}"]),
        ("a{2}*", ["aa", "aax"], ["a{2}"]),
        # a backslash escape is a Go regexp escape: \d is a digit
        ("file\\d*", ["file1", "file12x"], ["filed"]),
        # moby puts [^/]* inside the class: "[*]" is the class [[^/] repeated, then "]"
        ("[*]", ["]", "[]", "^^]"], ["*", "a"]),
        ("[[:digit:]]?", ["1a"], ["ab"]),
    ],
)
def test_moby_quirks_are_kept(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    """Odd patterns decide as they do in Docker (checked against moby's code on Go 1.19)."""
    ignore = DockerIgnore([pattern])
    assert [p for p in matching if not ignore.excluded(p)] == []
    assert [p for p in not_matching if ignore.excluded(p)] == []


def test_go_unicode_classes_are_refused() -> None:
    """``\\pL`` has no Python equivalent: refused with a clear error, never approximated."""
    with pytest.raises(ConfigError, match="not supported"):
        DockerIgnore(["\\pL*"])


# -- pruning a walk ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "directory", "may_contain"),
    [
        (["node_modules"], "node_modules", False),
        (["node_modules", "!node_modules/keep"], "node_modules", True),
        (["node_modules", "!node_modules/keep/**"], "node_modules", True),
        (["node_modules", "!other/keep"], "node_modules", False),
        (["node_modules", "!*.md"], "node_modules", False),  # *.md cannot cross into it
        (["node_modules", "!**/*.md"], "node_modules", True),
        (["node_modules", "!node*/x"], "node_modules", True),
        (["!node_modules/keep", "node_modules"], "node_modules", False),  # before: no effect
        (["docs"], "src", True),  # not excluded at all
        (["*", "!src"], "src", True),
        (["*", "!src"], "tests", False),
        (["a/b", "!a/b*/c"], "a/b", True),
        (["a/b", "!a/c/**"], "a/b", False),
        (["a/b", "!a/**"], "a/b", True),
        (["a", "!**"], "a", True),
        (["a", "!*x|"], "a", True),  # the empty alternative matches anywhere
    ],
)
def test_may_contain_included(patterns: list[str], directory: str, may_contain: bool) -> None:
    """An excluded directory may be skipped only when no later exception reaches inside it."""
    assert DockerIgnore(patterns).may_contain_included(directory) is may_contain


_NAMES = ["a", "b", "a.md", "x", "ab", "*"]
_TREE = ["/".join(p) for n in range(1, 4) for p in itertools.product(_NAMES, repeat=n)]
_TOKENS = ["a", "b", ".md", "/", "*", "**", "?", "[a-b]", "[^a]", "\\*", "|", "{2}", "x", "^"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=4)),
        min_size=1,
        max_size=4,
    )
)
def test_pruning_never_drops_an_included_path(lines: list[tuple[bool, list[str]]]) -> None:
    """Whatever the patterns, every path under a directory that may be skipped is excluded."""
    text = "\n".join(("!" if negate else "") + "".join(tokens) for negate, tokens in lines)
    try:
        ignore = DockerIgnore.from_text(text)
    except ConfigError:
        return
    for directory in (p for p in _TREE if p.count("/") < 2):
        if ignore.excluded(directory) and not ignore.may_contain_included(directory):
            under = [p for p in _TREE if p.startswith(directory + "/")]
            assert [p for p in under if not ignore.excluded(p)] == []


# -- reading a context -------------------------------------------------------------------------


def test_from_context_reads_the_contexts_file(tmp_path: Path) -> None:
    """from_context reads <context>/.dockerignore; without one nothing is excluded."""
    assert not DockerIgnore.from_context(tmp_path)
    assert not DockerIgnore.from_context(tmp_path).excluded("anything")
    (tmp_path / ".dockerignore").write_bytes(b"\xef\xbb\xbf*.md\r\n!README.md\r\n")
    ignore = DockerIgnore.from_context(tmp_path)
    assert ignore.patterns == ("*.md", "!README.md")
    assert ignore.excluded("a.md") and not ignore.excluded("README.md")


def test_a_dockerfile_specific_ignore_file_wins(tmp_path: Path) -> None:
    """<Dockerfile>.dockerignore next to the Dockerfile takes precedence, as in BuildKit."""
    (tmp_path / ".dockerignore").write_text("*.md\n")
    dockerfile = tmp_path / "build" / "app.Dockerfile"
    dockerfile.parent.mkdir()
    dockerfile.write_text("FROM scratch\n")
    assert DockerIgnore.from_context(tmp_path, dockerfile=dockerfile).patterns == ("*.md",)
    (tmp_path / "build" / "app.Dockerfile.dockerignore").write_text("*.py\n")
    assert DockerIgnore.from_context(tmp_path, dockerfile=dockerfile).patterns == ("*.py",)


def test_a_bad_file_names_itself(tmp_path: Path) -> None:
    """A malformed pattern in a context's file raises ConfigError naming the file."""
    (tmp_path / ".dockerignore").write_text("ok\n[unclosed\n")
    with pytest.raises(ConfigError, match=r"\.dockerignore"):
        DockerIgnore.from_context(tmp_path)


def test_build_context_walk_applies_dockers_rules(tmp_path: Path) -> None:
    """The image builder's context walk: `*.md` drops README.md but keeps docs/a.md, an
    excluded directory with a re-included child keeps the child, junk directories go."""
    from executor.build.context import context_files

    for name in (
        "README.md",
        "docs/a.md",
        "app/main.py",
        "node_modules/x/y.js",
        "build/keep.txt",
        "build/drop.o",
        "Dockerfile",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / ".dockerignore").write_text("*.md\nnode_modules\nbuild\n!build/keep.txt\n")
    kept = {p.relative_to(tmp_path).as_posix() for p in context_files(tmp_path)}
    assert kept == {".dockerignore", "Dockerfile", "app/main.py", "build/keep.txt", "docs/a.md"}
