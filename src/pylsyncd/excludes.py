"""rsync-compatible exclude patterns, compiled once and matched once per event.

The semantics are those of rsync's ``exclude.c`` and ``wildmatch.c`` (man page, "INCLUDE/EXCLUDE
PATTERN RULES"), checked against the real rsync 3.x rather than the man page alone:

* Matching works on bytes, as rsync does: ``?`` and a character class match one *byte*, so ``?``
  does not match ``é`` (two bytes in UTF-8) while ``??`` does, and POSIX classes are ASCII only.
* ``**`` is a plain "anything, slashes included": ``a/**/b`` needs at least one directory between
  ``a`` and ``b`` (unlike git), and ``**/foo`` matches a top-level ``foo`` only because rsync
  matches patterns that start with ``**`` against the path with a ``/`` in front of it.
* An unanchored pattern with a ``/`` but no ``**`` is matched against exactly as many trailing
  components as it has slashes plus one, so a slash inside a class (``x[/a]``) makes a pattern
  that can never match.

Every pattern becomes one regular expression over the *canonical text* of a path,
``"/" + path + ("/" if is_dir else "")``. All patterns are joined into one alternation, so a
decision is a single ``re.match``. Because an ancestor directory's canonical text is a prefix of
the path's canonical text that ends just after a ``/``, :meth:`ExcludeRules.excludes_path` is a
single ``re.match`` too: the alternation only has to end at such a boundary instead of at the end.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from pylsyncd.byte_classes import MalformedClassError, byte_class, parse_class

__all__ = ["ExcludeRules"]

_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()

_SLASH, _STAR, _QUESTION, _BACKSLASH = b"/"[0], b"*"[0], b"?"[0], b"\\"[0]
_OPEN = b"["[0]

# A path or ancestor decision ends at the end of the text, or just after the "/" that closes a
# directory; "[^/]/" keeps the lone leading "/" (the transfer root) from ever matching.
_END_OF_PATH = rb"\Z"
_END_OF_PATH_OR_ANCESTOR = rb"(?:\Z|(?<=[^/]/))"


class _MalformedError(Exception):
    """A pattern rsync would never match because it is malformed; the message says why."""


class ExcludeRules:
    """A compiled list of rsync exclude patterns (plain patterns: no ``- ``/``+ `` prefixes).

    To hand the same patterns to rsync, pass each one as ``--filter=- PATTERN``: ``--exclude``
    and ``--exclude-from`` would read ``- foo``, ``+ foo`` and ``!`` as rule prefixes.
    """

    __slots__ = ("_ancestor_re", "_self_re", "patterns")

    patterns: tuple[str, ...]

    def __init__(self, patterns: Sequence[str]) -> None:
        """Compile ``patterns``; raise ValueError naming the first malformed one."""
        self.patterns = tuple(patterns)
        alternatives: list[tuple[bytes, bytes]] = []
        for pattern in self.patterns:
            try:
                compiled = _compile(pattern)
            except _MalformedError as exc:
                raise ValueError(f"malformed exclude pattern {pattern!r}: {exc}") from None
            if compiled is not None:
                alternatives.append(compiled)
        self._self_re = _join(alternatives, _END_OF_PATH)
        self._ancestor_re = _join(alternatives, _END_OF_PATH_OR_ANCESTOR)

    def __bool__(self) -> bool:
        """False when there are no patterns, so callers can skip matching altogether."""
        return bool(self.patterns)

    def __repr__(self) -> str:
        return f"ExcludeRules({list(self.patterns)!r})"

    def excludes(self, path: str, is_dir: bool) -> bool:
        """Whether ``path`` itself is excluded, assuming none of its ancestors is."""
        if self._self_re is None or not path:
            return False
        return self._self_re.match(_canonical(path, is_dir)) is not None

    def excludes_path(self, path: str, is_dir: bool) -> bool:
        """Whether ``path`` or any ancestor directory of it is excluded."""
        if self._ancestor_re is None or not path:
            return False
        return self._ancestor_re.match(_canonical(path, is_dir)) is not None


def _canonical(path: str, is_dir: bool) -> bytes:
    # rsync compares the bytes of a name; names from os.fsdecode() round-trip exactly.
    text = b"/" + path.encode(_FS_ENCODING, _FS_ERRORS)
    return text + b"/" if is_dir else text


def _join(alternatives: list[tuple[bytes, bytes]], end: bytes) -> re.Pattern[bytes] | None:
    if not alternatives:
        return None
    body = b"|".join(head + end_check + end for head, end_check in alternatives)
    return re.compile(b"(?:" + body + b")", re.DOTALL)


def _compile(pattern: str) -> tuple[bytes, bytes] | None:
    """Translate one pattern into (regex up to the end check, end check), None if it never matches.

    The flags mirror rsync's add_rule() and rule_matches(), which compute them on the raw text,
    escapes included: ``\\**`` counts as containing ``**`` even though one star is escaped.
    """
    if not pattern:
        raise _MalformedError("empty pattern (rsync rejects it)")
    try:
        raw = pattern.encode(_FS_ENCODING, _FS_ERRORS)
    except UnicodeEncodeError as exc:
        raise _MalformedError(f"cannot be encoded as a file name ({exc.reason})") from None
    if b"\0" in raw:
        raise _MalformedError("contains a NUL byte")

    dir_only = len(raw) > 1 and raw.endswith(b"/")
    if dir_only:
        raw = raw[:-1]
    wild = any(c in raw for c in b"*?[")
    wild2 = wild and b"**" in raw
    wild2_prefix = wild2 and raw.startswith(b"**")
    # rsync appends "/" to a directory's name for a pattern ending in "***", so "dir/***" also
    # matches "dir" itself, but only as a directory.
    wild3_suffix = wild2 and raw.endswith(b"***")
    slash_count = raw.count(b"/")
    anchored = raw.startswith(b"/")
    body = raw[1:] if anchored else raw

    if wild:
        regex, literal_slashes = _translate(body)
    else:
        # Without a wildcard rsync compares the text as is: backslashes are ordinary characters.
        regex, literal_slashes = re.escape(body), body.count(b"/")

    if slash_count == 0 and not wild2:
        head = rb"/(?:[^/]*/)*"  # only the last component
    elif wild2_prefix:
        head = b""  # against "/" + path, which lets "**/foo" match a top-level "foo"
    elif anchored:
        head = b"/"
    elif not wild2:
        # rsync matches exactly the last slash_count + 1 components. Outside "**" only a literal
        # "/" matches a slash, so a slash that sits in a class makes the count unreachable.
        if literal_slashes != slash_count:
            return None
        head = rb"/(?:[^/]*/)*"
    else:
        head = rb"/(?:.*/)?"  # rsync retries after every slash

    if wild3_suffix:
        end_check = rb"(?<=/)" if dir_only else b""
    else:
        # The pattern sees the name without the "/" of a directory; (?<!/) stops it from
        # swallowing that "/" (and from matching an empty name).
        end_check = rb"(?<!/)/" if dir_only else rb"(?<!/)/?"
    return head + regex, end_check


def _translate(pattern: bytes) -> tuple[bytes, int]:
    """Translate a wildcard pattern into a regex; also count the literal slashes it must match."""
    parts: list[bytes] = []
    literal_slashes = 0
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == _STAR:
            run_end = i
            while run_end < n and pattern[run_end] == _STAR:
                run_end += 1
            parts.append(b".*" if run_end - i > 1 else b"[^/]*")
            i = run_end
            continue
        if c == _QUESTION:
            parts.append(b"[^/]")
            i += 1
            continue
        if c == _OPEN:
            try:
                members, i = parse_class(pattern, i + 1)
            except MalformedClassError as error:
                raise _MalformedError(str(error)) from None
            parts.append(byte_class(members))
            continue
        if c == _BACKSLASH:
            if i + 1 == n:
                raise _MalformedError("ends with a lone backslash")
            c = pattern[i + 1]
            i += 1
        if c == _SLASH:
            literal_slashes += 1
        parts.append(re.escape(bytes([c])))
        i += 1
    return b"".join(parts), literal_slashes
