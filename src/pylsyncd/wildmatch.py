"""Lines of git ignore files as regular expressions over bytes: git's wildmatch with WM_PATHNAME.

A port of ``dir.c``'s line parsing and ``wildmatch.c``, checked against git itself by
tests/test_gitignore_git.py:

* Trailing spaces go unless escaped with ``\\``; ``#`` starts a comment, ``\\#`` and ``\\!``
  are literal; ``!`` negates; a trailing ``/`` matches directories only; a line with a ``/``
  elsewhere is anchored at its file's directory, one without matches a name at any depth.
* ``*``, ``?`` and classes never match ``/``; ``**`` matches across directories only as ``**/``,
  ``/**/`` or ``/**``, and is a plain ``*`` anywhere else. Bytes, not characters, are matched:
  ``?`` does not match ``é`` (two bytes in UTF-8).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Rule", "parse_line"]

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


@dataclass(frozen=True, slots=True)
class Rule:
    """One line: a regex matching the name (`basename`) or the path relative to the file's
    directory, whether it re-includes (``!``), and whether it matches directories only."""

    regex: bytes
    negated: bool
    dir_only: bool
    basename: bool


def parse_line(line: bytes) -> Rule | None:
    """One line of an ignore file (its LF removed) as a rule; None for none (blank, comment,
    or a pattern git can never match)."""
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
    return Rule(body + rb"\Z", negated, dir_only, basename=not anchored)


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
    # git's match_pathname compares the pattern's literal head (up to its first "*?[\\") on its
    # own, then wildmatches the rest as a pattern of its own: a "**" right after that head is at
    # the start of a pattern there, so "a**/x" matches "ab/c/x" as "a" then "**/x".
    literal_head = next((k for k, c in enumerate(pattern) if c in b"*?[\\"), n)
    while i < n:
        c = pattern[i]
        if c == _STAR:
            run_end = i
            while run_end < n and pattern[run_end] == _STAR:
                run_end += 1
            starts = i in (0, literal_head) or pattern[i - 1] == _SLASH
            ends = run_end == n or pattern[run_end] == _SLASH or pattern[run_end:][:2] == b"\\/"
            double = run_end - i > 1 and starts and ends
            if double and run_end < n and pattern[run_end] == _SLASH:
                parts.append(b"(?:.*/)?")  # "**/": zero or more directories
                i = run_end + 1
            elif double:
                parts.append(b".*")  # at the end, or before an escaped "/": anything
                i = run_end
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
