"""What git would ignore in a source tree: its ``.gitignore`` files and ``.git/info/exclude``.

The decision is git's (``dir.c``; the lines are translated in `pylsyncd.wildmatch`), checked by
tests/test_gitignore_git.py against the real git on generated trees, not against the manual:
a path's decision comes from the deepest ``.gitignore`` at or above its directory that has a
matching line; within a file the last matching line wins; ``.git/info/exclude`` comes last. A
path below an ignored directory is ignored whatever says otherwise: callers that walk the tree
never descend into an ignored directory, so `GitIgnore.ignores` looks at the path alone.

Matching is cheap because it is compiled per directory: the files that apply to a directory
(its chain) are compiled once into two regexes, one over the entry's name for the lines without
a slash, one over its path for the anchored lines, each holding the lines of every file of the
chain in precedence order (a line that repeats one of higher precedence is dropped: it could
never decide). A decision is two regex matches at most, however many files apply; directories
without an ignore file of their own share their parent's chain.

The pathspec and dulwich libraries were measured against git with the same harness (see README,
"Ignoring what git ignores") and diverge where real files do not; this is small enough to own.
The ``.git`` directory itself is never ignored here: git does not track it, but a replica of a
repository usually wants it; EXCLUDES=.git leaves it out.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Sequence

from pylsyncd.wildmatch import Rule, parse_line

__all__ = ["GITIGNORE", "INFO_EXCLUDE", "GitIgnore", "IgnoreFile", "parse_lines"]

GITIGNORE = ".gitignore"
INFO_EXCLUDE = ".git/info/exclude"

# Who decided: (position of the file in the chain, deepest first; line number; negated).
_Decider = tuple[int, int, bool]


class _Alternation:
    """Regexes tried as one, in precedence order: `first` tells which one matched first."""

    __slots__ = ("_payloads", "_regex")

    def __init__(self, entries: Sequence[tuple[bytes, _Decider]]) -> None:
        self._regex = re.compile(b"|".join(b"(" + r + b")" for r, _ in entries), re.DOTALL)
        self._payloads: list[_Decider | None] = [None, *(payload for _, payload in entries)]

    def first(self, text: bytes) -> _Decider | None:
        match = self._regex.match(text)
        return None if match is None else self._payloads[match.lastindex or 0]


def _alternation(entries: list[tuple[bytes, _Decider]]) -> _Alternation | None:
    return _Alternation(entries) if entries else None


class IgnoreFile:
    """The lines of one ignore file, parsed."""

    __slots__ = ("rules",)

    def __init__(self, lines: Iterable[bytes]) -> None:
        """Parse the lines of a file (without their line ends)."""
        self.rules = [rule for rule in map(parse_line, lines) if rule is not None]


class _Chain:
    """The files that apply to the entries of one directory, deepest first, compiled into two
    alternations: the lines without a slash over the entry's name, the anchored ones over its
    path from the root (each behind its file's directory, as a literal)."""

    __slots__ = ("_anchored", "_names", "files")

    def __init__(self, files: tuple[tuple[bytes, IgnoreFile], ...]) -> None:
        self.files = files  # (the file's directory, relative, "" for the root; the file)
        self._names = (self._compile(names=True, dirs=False), self._compile(names=True, dirs=True))
        self._anchored = (
            self._compile(names=False, dirs=False),
            self._compile(names=False, dirs=True),
        )

    def _compile(self, *, names: bool, dirs: bool) -> _Alternation | None:
        entries: list[tuple[bytes, _Decider]] = []
        seen: set[bytes] = set()
        for position, (directory, ignore_file) in enumerate(self.files):
            prefix = b"" if names or not directory else re.escape(directory + b"/")
            for number in range(len(ignore_file.rules) - 1, -1, -1):
                rule: Rule = ignore_file.rules[number]
                regex = prefix + rule.regex
                if rule.basename != names or (rule.dir_only and not dirs) or regex in seen:
                    continue
                seen.add(regex)  # a repeat of a line that comes first could never decide
                entries.append((regex, (position, number, rule.negated)))
        return _alternation(entries)

    def decision(self, path: bytes, name_start: int, is_dir: bool) -> bool:
        """Whether the entry at `path` (its name from `name_start`) is ignored."""
        names, anchored = self._names[is_dir], self._anchored[is_dir]
        by_name = None if names is None else names.first(path[name_start:])
        by_path = None if anchored is None else anchored.first(path)
        if by_path is not None and (
            by_name is None
            or by_path[0] < by_name[0]
            or (by_path[0] == by_name[0] and by_path[1] > by_name[1])
        ):
            return not by_path[2]
        return by_name is not None and not by_name[2]


_EMPTY = _Chain(())


def parse_lines(data: bytes) -> list[bytes]:
    """An ignore file's lines, as git splits them (a CR before the LF is part of the line)."""
    return data.removeprefix(b"\xef\xbb\xbf").split(b"\n")  # git skips a UTF-8 BOM


class GitIgnore:
    """The ignore files of a tree, read once per directory and forgotten when they change."""

    def __init__(self, root: str) -> None:
        self.root = root
        # Directory (relative, "" for the root) -> its own file, None when it has none.
        self._files: dict[str, IgnoreFile | None] = {}
        # Directory -> the files that apply to a name in it, compiled.
        self._chains: dict[str, _Chain] = {}
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

    def forget(self, path: str) -> None:
        """`path` was deleted or moved away: what was read at and below it no longer holds
        (a directory that takes its place has ignore files of its own, or none)."""
        if path not in self._files:
            return  # never looked into; nor then is anything below it (parents come first)
        prefix = path + "/"
        with self._lock:
            for cache in (self._files, self._chains):
                for known in [d for d in cache if d == path or d.startswith(prefix)]:
                    del cache[known]
            self._with_file = {d for d in self._with_file if d != path and not d.startswith(prefix)}

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
        chain = self._chains.get(parent)
        if chain is None:
            with self._lock:
                chain = self._build_chain(parent)
        if chain is _EMPTY:
            return False
        encoded = os.fsencode(path)
        return chain.decision(encoded, encoded.rfind(b"/") + 1, is_dir)

    def ignores_path(self, path: str, is_dir: bool) -> bool:
        """Whether git ignores `path` or any ancestor directory of it."""
        parts = path.split("/")
        for end in range(1, len(parts)):
            if self.ignores("/".join(parts[:end]), True):
                return True
        return self.ignores(path, is_dir)

    def _build_chain(self, directory: str) -> _Chain:
        chain = self._chains.get(directory)
        if chain is None:
            own = self._file_of(directory)
            if directory:
                above = self._build_chain(directory.rpartition("/")[0])
            else:
                above = _EMPTY if self._info is None else _Chain(((b"", self._info),))
            # A directory without a file of its own shares its parent's chain, compiled once.
            chain = above if own is None else _Chain(((os.fsencode(directory), own), *above.files))
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
