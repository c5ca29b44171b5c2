"""``.dockerignore`` with Docker's own rules: a port of moby's ``ignorefile`` and
``patternmatcher``.

Reading a file (``ignorefile.ReadAll``): a UTF-8 BOM is dropped; a line whose first character
is ``#`` is a comment (``  # x`` is a pattern, not a comment); each line is trimmed, blank
lines are skipped; ``!`` marks an exception; the pattern is cleaned like Go's
``filepath.Clean`` (``./a``, ``a/``, ``a//b/../b`` become ``a``, ``a``, ``a/b``) and one leading
``/`` is dropped, so ``/foo`` and ``foo`` both mean ``foo`` at the context's root.

Matching (``patternmatcher``): ``*`` is any run of characters but ``/``, ``?`` one character but
``/``, ``[...]`` a class (negated with ``^``), ``\\`` escapes the next character; ``**`` matches
any number of directories, zero included (``**/*.go`` is every ``.go`` file, the root's too). A
pattern is anchored at the context's root (``*.md`` excludes ``README.md``, not
``docs/a.md``), and a pattern that matches a directory matches everything under it. The last
pattern that matches a path decides, so a later ``!`` line re-includes what an earlier line
excluded, even inside an excluded directory. A malformed pattern raises :class:`ConfigError`
(Docker fails the build on it).

moby turns each glob into a Go regular expression; so does this module, into the same
expression, then parses that (the subset of Go's syntax a glob can produce) and runs it with
Go's semantics, so the quirks carry over: ``.`` never matches (the root is never excluded);
``\\d`` is Go's ASCII digit class; moby leaves ``|``, ``{`` and ``}`` unescaped, so in a
wildcard pattern ``|`` splits it into alternatives and ``{2}`` is a repeat count, while
``*.{js,ts}`` stays literal. Differences: a pattern that Go's regexp rejects raises here at
once, where Docker fails only when it first evaluates it; Go's Unicode classes (``\\pL``) are
refused rather than approximated; the syntax check is that of Go 1.20 and later.

A walker prunes with :meth:`DockerIgnore.may_contain_included`: an excluded directory may be
skipped only when no later exception could match anything under it. BuildKit's walker answers
the same question more coarsely (it never prunes once any exception has a wildcard).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path
    from typing import Self

__all__ = ["DockerIgnore"]

#: Go's ``unicode.IsSpace``, which ``strings.TrimSpace`` trims (Python's ``strip()`` also trims
#: the ASCII separators 0x1c-0x1f, which Go keeps).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B))
)
#: bufio.Scanner's default limit: a longer line makes ``ReadAll`` (and the build) fail.
_MAX_LINE_BYTES = 64 * 1024
_MAX_RUNE = 0x10FFFF

Kind = Literal["exact", "prefix", "suffix", "regexp"]


class DockerIgnore:
    """The patterns of one ``.dockerignore`` file and Docker's decision for a path.

    Paths are relative to the build context and ``/``-separated (as ``Path.as_posix()`` gives).
    """

    __slots__ = ("_patterns",)

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        """Compile ``patterns`` as ``ignorefile.ReadAll`` returns them (``!`` for exceptions).

        Raises :class:`ConfigError` for a pattern Docker rejects (a lone ``!``, an unclosed
        ``[``, a trailing ``\\``, a backwards range such as ``[z-a]``).
        """
        compiled: list[_Pattern] = []
        for raw in patterns:
            text = raw.strip(_GO_SPACE)
            if not text:
                continue
            compiled.append(_Pattern.compile(text))
        self._patterns = tuple(compiled)

    @classmethod
    def from_text(cls, text: str) -> Self:
        """Parse the text of a ``.dockerignore`` file. Raises :class:`ConfigError`."""
        return cls(_read_patterns(text))

    @classmethod
    def from_context(cls, context: Path, *, dockerfile: Path | None = None) -> Self:
        """Read the ignore file Docker would use for a build of ``context``.

        BuildKit prefers ``<Dockerfile>.dockerignore`` next to the Dockerfile (for example
        ``app.Dockerfile.dockerignore``) over the context's ``.dockerignore``. No file means
        nothing is excluded. Raises :class:`ConfigError`.
        """
        candidates = [context / ".dockerignore"]
        if dockerfile is not None:
            candidates.insert(0, dockerfile.with_name(dockerfile.name + ".dockerignore"))
        for path in candidates:
            if path.is_file():
                # Go reads bytes; undecodable ones survive as in os.fsdecode'd file names.
                text = path.read_bytes().decode("utf-8", "surrogateescape")
                try:
                    return cls.from_text(text)
                except ConfigError as exc:
                    raise ConfigError(f"{path}: {exc}") from None
        return cls()

    @property
    def patterns(self) -> tuple[str, ...]:
        """The patterns in force, cleaned, exceptions with their ``!``."""
        return tuple(("!" if p.exception else "") + p.text for p in self._patterns)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def __repr__(self) -> str:
        return f"DockerIgnore({list(self.patterns)!r})"

    def excluded(self, path: str) -> bool:
        """Is ``path`` (context-relative) left out of the build context?

        moby's ``MatchesOrParentMatches``: a pattern matches the path or one of its parent
        directories, and the last pattern that matches decides.
        """
        file = _clean(path)
        if file == ".":
            return False  # the context itself is never excluded
        parents = _parents(file)
        matched = False
        for pattern in self._patterns:
            # A pattern that cannot change the answer so far is not evaluated (as in moby).
            if pattern.exception != matched:
                continue
            if pattern.matches(file) or any(pattern.matches(parent) for parent in parents):
                matched = not pattern.exception
        return matched

    def may_contain_included(self, directory: str) -> bool:
        """Can anything under ``directory`` be included? False means a walk may skip it.

        True for a directory that is not excluded. For an excluded one, every pattern up to
        the last one that excludes it also matches everything under it, so only a later
        exception can re-include something; this answers whether one could match a path
        under the directory. It may say True when nothing is re-included in the end, never
        False when something is.
        """
        folder = _clean(directory)
        if folder == ".":
            return True
        parents = _parents(folder)
        last = -1
        for index, pattern in enumerate(self._patterns):
            if pattern.matches(folder) or any(pattern.matches(p) for p in parents):
                last = index
        if last < 0 or self._patterns[last].exception:
            return True  # not excluded
        prefix = folder + "/"
        return any(p.exception and p.may_match_under(prefix) for p in self._patterns[last + 1 :])


# --- reading the file (ignorefile.ReadAll) -----------------------------------------------------


def _read_patterns(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline ends the last line; it does not start another
    patterns: list[str] = []
    for number, raw in enumerate(lines, 1):
        if len(raw.encode("utf-8", "surrogateescape")) >= _MAX_LINE_BYTES:
            raise ConfigError(f"line {number} of the ignore file is longer than 64 KiB")
        line = raw.removesuffix("\r")  # bufio.ScanLines drops one \r before the \n
        if number == 1:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip(_GO_SPACE)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip(_GO_SPACE)
        if pattern:
            pattern = _clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _clean(path: str) -> str:
    """Go's ``filepath.Clean`` for ``/``-separated paths (unlike ``posixpath.normpath``, a
    leading ``//`` becomes ``/``)."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _parents(file: str) -> list[str]:
    """The parent directories moby checks: ``a``, ``a/b`` for ``a/b/c``; none for ``a``."""
    parent = _clean(file[: file.rfind("/") + 1])  # filepath.Dir
    if parent == ".":
        return []
    dirs = parent.split("/")
    return ["/".join(dirs[: i + 1]) for i in range(len(dirs))]


# --- one pattern (patternmatcher.Pattern) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pattern:
    text: str  # cleaned, without the "!"
    exception: bool
    kind: Kind
    regex: re.Pattern[str] | None
    program: tuple[_Op, ...]  # the same expression, for may_match_under

    @classmethod
    def compile(cls, raw: str) -> _Pattern:
        text = _clean(raw)
        exception = text.startswith("!")
        if exception:
            if len(text) == 1:
                raise ConfigError(f'illegal exclusion pattern: "{raw}"')
            text = text[1:]
        if not _glob_syntax_ok(text):
            raise ConfigError(f"syntax error in pattern {raw!r}")
        kind, expression = _to_go_regexp(text)
        if kind != "regexp":
            return cls(text, exception, kind, None, ())
        try:
            branches = _GoRegexp(expression).parse()
            regex = re.compile(_python_regexp(branches), re.ASCII)
        except ValueError as exc:
            raise ConfigError(f"syntax error in pattern {raw!r}: {exc}") from None
        return cls(text, exception, kind, regex, _program(branches))

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])  # the text without its trailing **
        if self.kind == "suffix":
            suffix = self.text[2:]  # the text without its leading **
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        assert self.regex is not None
        return self.regex.search(path) is not None  # Go's MatchString: a match anywhere

    def may_match_under(self, prefix: str) -> bool:
        """Could this pattern match some path that starts with ``prefix`` (``dir/``)?"""
        if self.kind == "exact":
            return self.text.startswith(prefix)
        if self.kind == "prefix":
            start = self.text[:-2]
            return start.startswith(prefix) or prefix.startswith(start)
        if self.kind == "suffix":
            return True
        return _may_match_with_prefix(self.program, prefix)


def _glob_syntax_ok(pattern: str) -> bool:
    """Go's ``filepath.Match`` syntax check, which moby runs on every pattern (POSIX rules:
    ``\\`` escapes; a class needs a first item that is not ``-`` or ``]``, and its ``]``)."""
    i, n = 0, len(pattern)

    def item(i: int) -> int:  # getEsc: one class character; -1 if malformed or unterminated
        if i >= n or pattern[i] in "-]":
            return -1
        if pattern[i] == "\\":
            i += 1
            if i >= n:
                return -1
        i += 1
        return i if i < n else -1

    while i < n:
        if pattern[i] == "\\":
            if i + 1 >= n:
                return False
            i += 2
        elif pattern[i] == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while not (i < n and pattern[i] == "]" and ranges > 0):
                i = item(i)
                if i < 0:
                    return False
                if pattern[i] == "-":
                    i = item(i + 1)
                    if i < 0:
                        return False
                ranges += 1
            i += 1
        else:
            i += 1
    return True


#: What moby escapes when it builds an expression. Its table lists ``.+()|{}$``, but it is a
#: bitmap of 8 bytes indexed by ``1 << (c / 8)``, which is 0 for every character from 64 up: so
#: ``|``, ``{`` and ``}`` reach Go's parser raw (``*.{js,ts}`` stays literal, as Go reads a
#: ``{`` that is not a repeat count; a ``|`` in a wildcard pattern splits it in two).
_MOBY_ESCAPED = ".+()$"


def _to_go_regexp(pattern: str) -> tuple[Kind, str]:
    """moby's ``Pattern.compile`` with ``/`` as the separator: the match kind and, for
    ``regexp``, the Go expression (byte for byte what moby builds)."""
    expression = "^"
    kind: Kind = "exact"
    pos, n = 0, len(pattern)
    first = True
    while pos < n:
        ch = pattern[pos]
        pos += 1
        if ch == "*":
            if pos < n and pattern[pos] == "*":
                pos += 1
                if pos < n and pattern[pos] == "/":
                    pos += 1  # treat **/ as **
                if pos >= n:  # a trailing ** matches everything, as in .gitignore
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        expression += ".*"
                        kind = "regexp"
                else:  # any number of directories, even none
                    expression += "(.*/)?"
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                expression += "[^/]*"
                kind = "regexp"
        elif ch == "?":
            expression += "[^/]"
            kind = "regexp"
        elif ch in _MOBY_ESCAPED:
            expression += "\\" + ch
        elif ch == "\\":
            if pos < n:
                expression += "\\" + pattern[pos]
                pos += 1
                kind = "regexp"
            else:
                expression += "\\"
        elif ch in "[]":
            expression += ch
            kind = "regexp"
        else:
            expression += ch
        first = False
    if kind == "regexp":
        expression += "$"
    return kind, expression


# --- the Go regular expressions a glob can produce ---------------------------------------------

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class _Set:
    """One character out of ``ranges`` (or out of their complement)."""

    negated: bool
    ranges: Ranges


@dataclass(frozen=True, slots=True)
class _Group:
    branches: Branches


@dataclass(frozen=True, slots=True)
class _Assert:
    what: Literal["begin", "end", "word", "not-word"]


@dataclass(frozen=True, slots=True)
class _Atom:
    item: _Set | _Group | _Assert
    low: int = 1
    high: int | None = 1  # None: no upper bound


Branches = tuple[tuple[_Atom, ...], ...]


def _ranges(*spans: str) -> Ranges:
    return tuple((ord(s[0]), ord(s[-1])) for s in spans)


#: Go's Perl classes (ASCII, as in RE2) and POSIX classes.
_PERL: dict[str, Ranges] = {
    "d": _ranges("09"),
    "s": _ranges("\t\n", "\f\r", " "),
    "w": _ranges("09", "AZ", "_", "az"),
}
_POSIX: dict[str, Ranges] = {
    "alnum": _ranges("09", "AZ", "az"),
    "alpha": _ranges("AZ", "az"),
    "ascii": ((0, 0x7F),),
    "blank": _ranges("\t", " "),
    "cntrl": ((0, 0x1F), (0x7F, 0x7F)),
    "digit": _ranges("09"),
    "graph": _ranges("!~"),
    "lower": _ranges("az"),
    "print": _ranges(" ~"),
    "punct": _ranges("!/", ":@", "[`", "{~"),
    "space": _ranges("\t\r", " "),
    "upper": _ranges("AZ"),
    "word": _ranges("09", "AZ", "_", "az"),
    "xdigit": _ranges("09", "AF", "af"),
}
_NEWLINE: Ranges = ((10, 10),)


def _complement(ranges: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    low = 0
    for lo, hi in sorted(ranges):
        if lo > low:
            out.append((low, lo - 1))
        low = max(low, hi + 1)
    if low <= _MAX_RUNE:
        out.append((low, _MAX_RUNE))
    return tuple(out)


class _GoRegexp:
    """A parser for the Go (RE2) syntax that moby's expressions can contain: literals, escapes,
    classes, ``.``, ``|``, the group ``(.*/)``, assertions and repeats (``*``, ``?``, ``{n,m}``).
    Raises ``ValueError`` where Go's ``regexp.Compile`` fails, and for Go's Unicode classes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Branches:
        branches = self._alternation()
        if self.pos != len(self.text):
            raise ValueError(f"unexpected {self.text[self.pos]!r}")
        return branches

    def _alternation(self) -> Branches:
        branches = [self._sequence()]
        while self.pos < len(self.text) and self.text[self.pos] == "|":
            self.pos += 1
            branches.append(self._sequence())
        return tuple(branches)

    def _sequence(self) -> tuple[_Atom, ...]:
        atoms: list[_Atom | None] = []  # None: a repeated assertion that may be absent
        repeated = False
        text = self.text
        while self.pos < len(text) and text[self.pos] not in ")|":
            repeat = self._repeat()
            if repeat is not None:
                if not atoms:
                    raise ValueError("missing argument to repetition operator")
                if repeated:
                    raise ValueError("invalid nested repetition operator")
                last = atoms[-1]
                low, high = repeat
                if last is None or isinstance(last.item, _Assert):
                    # Go repeats an assertion; it holds as often as once, or is optional.
                    atoms[-1] = last if low > 0 else None
                else:
                    atoms[-1] = _Atom(last.item, low, high)
                repeated = True
                continue
            repeated = False
            if text.startswith("\\Q", self.pos):  # \Q...\E quotes a literal run
                end = text.find("\\E", self.pos + 2)
                quoted = text[self.pos + 2 : len(text) if end < 0 else end]
                atoms.extend(_Atom(_literal(ord(c))) for c in quoted)
                self.pos = len(text) if end < 0 else end + 2
            else:
                atoms.append(_Atom(self._item()))
        return tuple(atom for atom in atoms if atom is not None)

    def _repeat(self) -> tuple[int, int | None] | None:
        """A repeat operator at the position, consumed; None if there is none (a ``{`` that
        is not a valid count is a literal, as in Go)."""
        text = self.text
        ch = text[self.pos]
        if ch in "*?":
            self.pos += 1
            return (0, None) if ch == "*" else (0, 1)
        if ch != "{":
            return None
        found = _REPEAT.match(text, self.pos)
        if found is None:
            return None
        low = int(found["low"])
        high = low if found["comma"] is None else (int(found["high"]) if found["high"] else None)
        if low > 1000 or (high is not None and (high > 1000 or high < low)):
            raise ValueError(f"invalid repeat count {found[0]}")
        self.pos = found.end()
        return low, high

    def _item(self) -> _Set | _Group | _Assert:
        text = self.text
        ch = text[self.pos]
        self.pos += 1
        if ch == "(":
            group = _Group(self._alternation())
            if self.pos >= len(text):
                raise ValueError("missing closing )")
            self.pos += 1
            return group
        if ch == "^":
            return _Assert("begin")
        if ch == "$":
            return _Assert("end")
        if ch == ".":
            return _Set(True, _NEWLINE)
        if ch == "[":
            return self._class()
        if ch == "\\":
            escaped = self._escape(in_class=False)
            return _literal(escaped) if isinstance(escaped, int) else escaped
        if ch == "+":  # moby escapes +; raw, it would be an operator
            raise ValueError("unexpected '+'")
        return _literal(ord(ch))

    def _class(self) -> _Set:
        text, n = self.text, len(self.text)
        negated = self.pos < n and text[self.pos] == "^"
        if negated:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            if self.pos >= n:
                raise ValueError("missing closing ]")
            if text[self.pos] == "]" and not first:  # a ] first in the class is a member
                self.pos += 1
                return _Set(negated, tuple(ranges))
            first = False
            if text.startswith("[:", self.pos) and (end := text.find(":]", self.pos + 2)) >= 0:
                name = text[self.pos + 2 : end]
                found = _POSIX.get(name.removeprefix("^"))
                if found is None:
                    raise ValueError(f"invalid character class range [:{name}:]")
                ranges.extend(_complement(found) if name.startswith("^") else found)
                self.pos = end + 2
                continue
            low = self._class_char()
            if isinstance(low, _Set):  # \d, \S, ...: a class, never the start of a range
                ranges.extend(_positive(low))
                continue
            high = low
            if self.pos + 1 < n and text[self.pos] == "-" and text[self.pos + 1] != "]":
                self.pos += 1
                end_char = self._class_char()
                if isinstance(end_char, _Set) or end_char < low:
                    raise ValueError("invalid character class range")
                high = end_char
            ranges.append((low, high))

    def _class_char(self) -> int | _Set:
        ch = self.text[self.pos]
        self.pos += 1
        if ch != "\\":
            return ord(ch)
        escaped = self._escape(in_class=True)
        assert not isinstance(escaped, _Assert)
        return escaped

    def _escape(self, *, in_class: bool) -> int | _Set | _Assert:
        """After a backslash: an assertion, a Perl class, or one character."""
        text, n = self.text, len(self.text)
        if self.pos >= n:
            raise ValueError("trailing backslash at end of expression")
        ch = text[self.pos]
        self.pos += 1
        if not in_class and ch in _ASSERTIONS:
            return _Assert(_ASSERTIONS[ch])
        if ch in "pP":
            raise ValueError(f"Unicode class \\{ch} is not supported")
        if ch.lower() in _PERL:
            return _Set(ch.isupper(), _PERL[ch.lower()])
        if ch in "01234567":
            if ch != "0" and not (self.pos < n and text[self.pos] in "01234567"):
                raise ValueError(f"invalid escape sequence \\{ch}")  # a backreference
            value = int(ch)
            for _ in range(2):
                if self.pos < n and text[self.pos] in "01234567":
                    value = value * 8 + int(text[self.pos])
                    self.pos += 1
            return value
        if ch == "x":
            if text.startswith("{", self.pos):
                end = text.find("}", self.pos)
                digits = text[self.pos + 1 : end] if end >= 0 else ""
                self.pos = end + 1 if end >= 0 else n
            else:
                digits = text[self.pos : self.pos + 2]
                self.pos += 2
                if len(digits) < 2:
                    digits = ""
            if not digits or digits.strip("0123456789abcdefABCDEF") or int(digits, 16) > _MAX_RUNE:
                raise ValueError("invalid escape sequence \\x")
            return int(digits, 16)
        if ch in _CONTROLS:
            return _CONTROLS[ch]
        if ch.isascii() and not ch.isalnum():
            return ord(ch)  # escaped punctuation is itself
        raise ValueError(f"invalid escape sequence \\{ch}")


#: Go's repeat count: no leading zeros; anything else makes the { a literal.
_REPEAT = re.compile(r"\{(?P<low>0|[1-9][0-9]*)(?P<comma>,(?P<high>0|[1-9][0-9]*)?)?\}")
_ASSERTIONS: dict[str, Literal["begin", "end", "word", "not-word"]] = {
    "A": "begin",
    "z": "end",
    "b": "word",
    "B": "not-word",
}
_CONTROLS = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}


def _literal(code: int) -> _Set:
    return _Set(False, ((code, code),))


def _positive(item: _Set) -> Ranges:
    """The characters ``item`` matches, as ranges."""
    return _complement(item.ranges) if item.negated else item.ranges


def _python_regexp(branches: Branches) -> str:
    """The same expression in Python's syntax. Every class is spelled as its characters'
    ranges with ``\\U`` escapes, so no character is ever special to ``re``."""
    return "|".join("".join(_python_atom(atom) for atom in atoms) for atoms in branches)


def _python_atom(atom: _Atom) -> str:
    item = atom.item
    if isinstance(item, _Group):
        text = "(?:" + _python_regexp(item.branches) + ")"
    elif isinstance(item, _Assert):
        text = {"begin": r"\A", "end": r"\Z", "word": r"\b", "not-word": r"\B"}[item.what]
    elif ranges := _positive(item):
        spans = (f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges)
        text = "[" + "".join(spans) + "]"
    else:
        text = r"[^\s\S]"  # an empty class: matches nothing, and may be repeated
    if (atom.low, atom.high) == (1, 1):
        return text
    return f"{text}{{{atom.low},{'' if atom.high is None else atom.high}}}"


# --- may a pattern match under a directory? ------------------------------------------------------

# A small program for the expression, run as a Pike VM: ("set", _Set) consumes a character,
# ("split", (a, b)) forks, ("jump", a) goes on, ("assert", what) checks the position, and
# ("match", None) ends.
_Op = tuple[str, object]


def _program(branches: Branches) -> tuple[_Op, ...]:
    ops: list[_Op] = []

    def alternation(branches: Branches) -> None:
        jumps: list[int] = []
        for index, atoms in enumerate(branches):
            fork = len(ops)
            if index < len(branches) - 1:
                ops.append(("split", None))  # patched once the branch is emitted
            for atom in atoms:
                repeated(atom)
            if index < len(branches) - 1:
                jumps.append(len(ops))
                ops.append(("jump", None))
                ops[fork] = ("split", (fork + 1, len(ops)))
        for jump in jumps:
            ops[jump] = ("jump", len(ops))

    def once(item: _Set | _Group | _Assert) -> None:
        if isinstance(item, _Group):
            alternation(item.branches)
        elif isinstance(item, _Assert):
            ops.append(("assert", item.what))
        else:
            ops.append(("set", item))

    def repeated(atom: _Atom) -> None:
        for _ in range(atom.low):
            once(atom.item)
        if atom.high is None:  # star: fork between another round and going on
            fork = len(ops)
            ops.append(("split", None))
            once(atom.item)
            ops.append(("jump", fork))
            ops[fork] = ("split", (fork + 1, len(ops)))
        else:
            for _ in range(atom.high - atom.low):
                fork = len(ops)
                ops.append(("split", None))
                once(atom.item)
                ops[fork] = ("split", (fork + 1, len(ops)))

    alternation(branches)
    ops.append(("match", None))
    return tuple(ops)


def _may_match_with_prefix(program: Sequence[_Op], prefix: str) -> bool:
    """Could the expression match some ``prefix + rest`` (``rest`` not empty)?

    Go's ``MatchString`` looks for a match anywhere, so a thread starts at every position.
    Word-boundary assertions are taken as true: the answer can only err towards True.
    """

    def closure(pcs: Iterable[int], *, at_start: bool, at_end: bool) -> set[int]:
        seen: set[int] = set()
        stack = list(pcs)
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            op, arg = program[pc]
            if op == "split":
                assert isinstance(arg, tuple)
                stack.extend(arg)
            elif op == "jump":
                assert isinstance(arg, int)
                stack.append(arg)
            elif op == "assert" and (
                (arg == "begin" and at_start) or (arg == "end" and at_end) or arg in _WORD
            ):
                stack.append(pc + 1)
        return seen

    threads = closure([0], at_start=True, at_end=False)
    for char in prefix:
        if len(program) - 1 in threads:
            return True  # a match inside the prefix is a match inside every longer path
        step = [pc + 1 for pc in threads if _consumes(program[pc], char)]
        threads = closure([*step, 0], at_start=False, at_end=False)
    # After the prefix, any characters may follow, then the end.
    reachable = closure(threads, at_start=False, at_end=True)
    frontier = list(reachable)
    while frontier:
        pc = frontier.pop()
        if program[pc][0] == "set":
            for nxt in closure([pc + 1], at_start=False, at_end=True) - reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    return len(program) - 1 in reachable


_WORD = ("word", "not-word")


def _consumes(op: _Op, char: str) -> bool:
    kind, item = op
    if kind != "set" or not isinstance(item, _Set):
        return False
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in item.ranges) != item.negated
