"""What git would ignore in a source tree: its ``.gitignore`` files and ``.git/info/exclude``.

The decision is git's (``dir.c``, ``wildmatch.c``), checked by tests/test_gitignore_git.py against
the real git on generated trees rather than against the documentation alone:

* A path's decision comes from the deepest ``.gitignore`` at or above its directory that has a
  matching line; within a file the last matching line wins; ``.git/info/exclude`` comes last.
  A path below an ignored directory is ignored whatever says otherwise: callers that walk the
  tree never descend into an ignored directory, so `GitIgnore.ignores` only looks at the path.
* A line: trailing spaces go unless escaped with ``\\``; ``#`` starts a comment, ``\\#`` and
  ``\\!`` are literal; ``!`` negates; a trailing ``/`` matches directories only; a line with a
  ``/`` elsewhere is anchored at its file's directory, one without matches the name at any depth.
* Wildcards match bytes with git's WM_PATHNAME: ``*``, ``?`` and classes never match ``/``;
  ``**`` matches across directories only as ``**/``, ``/**/`` or ``/**``, else it is one ``*``.

The pathspec and dulwich libraries were measured against git with the same harness (see README,
"Ignoring what git ignores") and diverge on cases a project's files do contain; this module is
small enough to own. The ``.git`` directory itself is never ignored here: git does not track it,
but a replica of a repository usually wants it; EXCLUDES=.git leaves it out.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable

__all__ = ["GitIgnore", "IgnoreFile", "parse_lines"]

GITIGNORE = ".gitignore"
INFO_EXCLUDE = ".git/info/exclude"

_STAR, _QUESTION, _BACKSLASH, _OPEN, _CLOSE, _SLASH = (c for c in b"*?\\[]/")
_BANG, _CARET, _COLON, _DASH = (c for c in b"!^:-")

# git's POSIX classes use the C library's ctype in the C locale: ASCII only.
_ASCII = range(0x80)
_POSIX_CLASSES: dict[bytes, frozenset[int]] = {
    b"alnum": frozenset(c for c in _ASCII if bytes([c]).isalnum()),
    b"alpha": frozenset(c for c in _ASCII if bytes([c]).isalpha()),
    b"blank": frozenset(b" \t"),
    b"cntrl": frozenset([*range(0x20), 0x7F]),
    b"digit": frozenset(b"0123456789"),
    b"graph": frozenset(range(0x21, 0x7F)),
    b"lower": frozenset(b"abcdefghijklmnopqrstuvwxyz"),
    b"print": frozenset(range(0x20, 0x7F)),
    b"punct": frozenset(c for c in range(0x21, 0x7F) if not bytes([c]).isalnum()),
    b"space": frozenset(b" \t\n\v\f\r"),
    b"upper": frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    b"xdigit": frozenset(b"0123456789abcdefABCDEF"),
}


class _NeverMatches(Exception):
    """A pattern git can never match (an unterminated class, a lone trailing backslash)."""


class IgnoreFile:
    """The lines of one ignore file, compiled: one regex for directories, one for other entries.

    Each regex is an alternation of the lines, the last line first, each in a group of its own:
    the group that matched is the last matching line, and whether it negates is a lookup.
    """

    __slots__ = ("_dir_re", "_file_re", "_negated_dir", "_negated_file")

    def __init__(self, lines: Iterable[bytes]) -> None:
        """Compile the lines of a file (without their line ends)."""
        rules = [rule for rule in map(_parse, lines) if rule is not None]
        rules.reverse()
        self._dir_re, self._negated_dir = _join(rules)
        self._file_re, self._negated_file = _join([r for r in rules if not r[2]])

    def decision(self, relative: bytes, is_dir: bool) -> bool | None:
        """True: ignored; False: re-included by a ``!`` line; None: no line matches."""
        regex = self._dir_re if is_dir else self._file_re
        if regex is None:
            return None
        match = regex.match(relative)
        if match is None:
            return None
        negated = self._negated_dir if is_dir else self._negated_file
        return not negated[match.lastindex or 0]


def parse_lines(data: bytes) -> list[bytes]:
    """An ignore file's lines, as git splits them (a CR before the LF is part of the line)."""
    return data.removeprefix(b"\xef\xbb\xbf").split(b"\n")  # git skips a UTF-8 BOM


class GitIgnore:
    """The ignore files of a tree, read once per directory and forgotten when they change."""

    def __init__(self, root: str) -> None:
        self.root = root
        # Directory (relative, "" for the root) -> its own file, None when it has none.
        self._files: dict[str, IgnoreFile | None] = {}
        # Directory -> the files that apply to a name in it, deepest first.
        self._chains: dict[str, tuple[tuple[int, IgnoreFile], ...]] = {}
        self._with_file: set[str] = set()  # the directories whose own file was found
        self._info = self._read(INFO_EXCLUDE)
        # The watcher's reader thread and the pair's thread both ask; a chain is built, and
        # the files forgotten, under the lock, so no chain of old files outlives a reload.
        self._lock = threading.Lock()

    def reload(self) -> None:
        """Forget every file read: they are read again as paths below them are looked at."""
        with self._lock:
            self._files, self._chains, self._with_file = {}, {}, set()
            self._info = self._read(INFO_EXCLUDE)

    def holds_rules(self, path: str) -> bool:
        """Whether `path` is or holds a directory whose ``.gitignore`` was read and applies:
        moving or deleting it changes the rules of whatever takes its place."""
        if not path:
            return bool(self._with_file)
        prefix = path + "/"
        return any(d == path or d.startswith(prefix) for d in list(self._with_file))

    def ignores(self, path: str, is_dir: bool) -> bool:
        """Whether git ignores `path`, assuming it ignores none of its ancestors."""
        parent, _, _ = path.rpartition("/")
        encoded = os.fsencode(path)
        for start, rules in self._chain(parent):
            decision = rules.decision(encoded[start:], is_dir)
            if decision is not None:
                return decision
        return False

    def ignores_path(self, path: str, is_dir: bool) -> bool:
        """Whether git ignores `path` or any ancestor directory of it."""
        parts = path.split("/")
        for end in range(1, len(parts)):
            if self.ignores("/".join(parts[:end]), True):
                return True
        return self.ignores(path, is_dir)

    def _chain(self, directory: str) -> tuple[tuple[int, IgnoreFile], ...]:
        """(offset of the path relative to the file's directory, file), deepest file first."""
        chain = self._chains.get(directory)
        if chain is not None:
            return chain
        with self._lock:
            return self._build_chain(directory)

    def _build_chain(self, directory: str) -> tuple[tuple[int, IgnoreFile], ...]:
        chain = self._chains.get(directory)
        if chain is None:
            own = self._file_of(directory)
            above = (
                self._build_chain(directory.rpartition("/")[0])
                if directory
                else (((0, self._info),) if self._info is not None else ())
            )
            start = len(os.fsencode(directory)) + 1 if directory else 0
            chain = ((start, own), *above) if own is not None else above
            self._chains[directory] = chain
        return chain

    def _file_of(self, directory: str) -> IgnoreFile | None:
        if directory not in self._files:
            name = f"{directory}/{GITIGNORE}" if directory else GITIGNORE
            found = self._files[directory] = self._read(name)
            if found is not None:
                self._with_file.add(directory)
        return self._files[directory]

    def _read(self, relative: str) -> IgnoreFile | None:
        # git reads an ignore file only when it is a regular file (a symlink is not followed).
        try:
            fd = os.open(os.path.join(self.root, relative), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as file:
                data = file.read()
        except OSError:  # a directory named .gitignore, or unreadable: git skips it too
            return None
        return IgnoreFile(parse_lines(data))


def _join(rules: list[tuple[bytes, bool, bool]]) -> tuple[re.Pattern[bytes] | None, list[bool]]:
    """One alternation of (regex, negated, directory only) rules, and each group's negation."""
    if not rules:
        return None, []
    body = b"|".join(b"(" + regex + b")" for regex, _, _ in rules)
    return re.compile(body, re.DOTALL), [False, *(negated for _, negated, _ in rules)]


def _parse(line: bytes) -> tuple[bytes, bool, bool] | None:
    """One line as (regex over the path relative to the file's directory, negated, dir only)."""
    if line.endswith(b"\r"):
        # git strips a CR only as part of CRLF line ends, which it does (since 2.x) before
        # trailing spaces are looked at.
        line = line[:-1]
    line = _strip_trailing_spaces(line)
    if not line or line.startswith(b"#"):
        return None
    negated = line.startswith(b"!")
    if negated:
        line = line[1:]
    dir_only = line.endswith(b"/")
    if dir_only:
        line = line[:-1]
    if not line:
        return None
    anchored = b"/" in line
    if line.startswith(b"/"):
        line = line[1:]
    try:
        body = _translate(line)
    except _NeverMatches:
        return None
    head = b"" if anchored else rb"(?:.*/)?"
    return head + body + rb"\Z", negated, dir_only


def _strip_trailing_spaces(line: bytes) -> bytes:
    """git's trim_trailing_spaces: the spaces at the end go, from the first unescaped one on; a
    line ending in a lone backslash keeps them all."""
    last_space = -1
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == 0x20:
            if last_space < 0:
                last_space = i
        elif c == _BACKSLASH:
            i += 1
            if i == n:
                return line
            last_space = -1
        else:
            last_space = -1
        i += 1
    return line[:last_space] if last_space >= 0 else line


def _translate(pattern: bytes) -> bytes:
    """A wildmatch pattern (WM_PATHNAME) as a regex over bytes."""
    parts: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == _STAR:
            run_end = i
            while run_end < n and pattern[run_end] == _STAR:
                run_end += 1
            after_slash = i == 0 or pattern[i - 1] == _SLASH
            double = run_end - i > 1 and after_slash
            if double and run_end + 1 < n and pattern[run_end] == _SLASH:
                parts.append(b"(?:.*/)?")  # "**/": zero or more directories
                i = run_end + 1
            elif double and run_end == n:
                parts.append(b".*")  # "/**" at the end: everything inside
                i = run_end
            elif double and pattern[run_end] == _SLASH:
                # "**/" as the whole rest: git's wildmatch needs a "/" and then anything.
                parts.append(b"(?:.*/)?")
                i = run_end + 1
            else:
                parts.append(b"[^/]*")
                i = run_end
            continue
        if c == _QUESTION:
            parts.append(b"[^/]")
            i += 1
            continue
        if c == _OPEN:
            members, i = _parse_class(pattern, i + 1)
            parts.append(_byte_class(members))
            continue
        if c == _BACKSLASH:
            if i + 1 == n:
                raise _NeverMatches
            c = pattern[i + 1]
            i += 1
        parts.append(re.escape(bytes([c])))
        i += 1
    return b"".join(parts)


def _parse_class(pattern: bytes, start: int) -> tuple[frozenset[int], int]:
    """A class whose "[" is just before `start`: its bytes and the index after its "]".

    A port of the class loop in git's dowild(): the first member is literal even if it is "]",
    "[:name:]" is a POSIX class, a range's end may be escaped, and no class matches "/".
    """
    n = len(pattern)

    def at(k: int) -> int:
        return pattern[k] if k < n else 0

    p = start
    ch = at(p)
    negated = ch in (_BANG, _CARET)
    if negated:
        p += 1
        ch = at(p)
    members: set[int] = set()
    prev = 0
    while True:
        if ch == 0:
            raise _NeverMatches
        if ch == _BACKSLASH:
            p += 1
            ch = at(p)
            if ch == 0:
                raise _NeverMatches
            members.add(ch)
        elif ch == _DASH and prev and at(p + 1) and at(p + 1) != _CLOSE:
            p += 1
            ch = at(p)
            if ch == _BACKSLASH:
                p += 1
                ch = at(p)
                if ch == 0:
                    raise _NeverMatches
            members.update(range(prev, ch + 1))
            ch = 0  # a range never starts another range
        elif ch == _OPEN and at(p + 1) == _COLON:
            name_start = p + 2
            p = name_start
            while at(p) and at(p) != _CLOSE:
                p += 1
            if not at(p):
                raise _NeverMatches
            if p - name_start - 1 < 0 or pattern[p - 1] != _COLON:
                # Not a class name after all: "[" is a member and the scan goes on after it.
                p = name_start - 2
                ch = _OPEN
                members.add(ch)
            else:
                name = pattern[name_start : p - 1]
                if name not in _POSIX_CLASSES:
                    raise _NeverMatches
                members.update(_POSIX_CLASSES[name])
                ch = 0
        else:
            members.add(ch)
        prev = ch
        p += 1
        ch = at(p)
        if ch == _CLOSE:  # only after a first member: "[]a]" holds "]" and "a"
            break
    if negated:
        members = set(range(1, 256)) - members
    members.discard(_SLASH)
    members.discard(0)
    return frozenset(members), p + 1


def _byte_class(members: frozenset[int]) -> bytes:
    """A set of bytes as a regex class; an empty set never matches."""
    if not members:
        return b"(?!)"
    return b"[" + b"".join(b"\\x%02x" % c for c in sorted(members)) + b"]"
