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

from pylsyncd.byte_classes import MalformedClassError, byte_class, parse_class

__all__ = ["Rule", "parse_line"]

_STAR, _QUESTION, _BACKSLASH, _OPEN, _SLASH = (c for c in b"*?\\[/")


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
            try:
                members, i = parse_class(pattern, i + 1)
            except MalformedClassError:
                raise _NeverMatches from None
            parts.append(byte_class(members))
            continue
        if c == _BACKSLASH:
            if i + 1 == n:
                raise _NeverMatches
            c = pattern[i + 1]
            i += 1
        parts.append(re.escape(bytes([c])))
        i += 1
    return b"".join(parts)
