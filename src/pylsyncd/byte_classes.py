"""Character classes of wildmatch patterns (``[a-z]``, ``[!x]``, ``[[:alpha:]]``), as bytes.

rsync's ``wildmatch.c`` and git's are the same code (git took it from rsync): both exclude
matchers (`excludes` for rsync's patterns, `wildmatch` for git's ignore files) parse a class
with this one port of its loop and render it as a regular expression over bytes.
"""

from __future__ import annotations

__all__ = ["MalformedClassError", "byte_class", "parse_class"]

_SLASH, _BACKSLASH = b"/"[0], b"\\"[0]
_OPEN, _CLOSE, _COLON, _DASH, _BANG, _CARET = (c for c in b"[]:-!^")

# Both call the C library's isalpha() and friends one byte at a time; in the C and UTF-8
# locales a daemon runs in, no byte above 0x7f belongs to any class.
_GRAPH = frozenset(range(0x21, 0x7F))
_ALNUM = frozenset(c for c in range(0x80) if bytes([c]).isalnum())
POSIX_CLASSES: dict[bytes, frozenset[int]] = {
    b"alnum": _ALNUM,
    b"alpha": frozenset(c for c in range(0x80) if bytes([c]).isalpha()),
    b"blank": frozenset(b" \t"),
    b"cntrl": frozenset([*range(0x20), 0x7F]),
    b"digit": frozenset(b"0123456789"),
    b"graph": _GRAPH,
    b"lower": frozenset(b"abcdefghijklmnopqrstuvwxyz"),
    b"print": _GRAPH | {0x20},
    b"punct": _GRAPH - _ALNUM,
    b"space": frozenset(b" \t\n\v\f\r"),
    b"upper": frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    b"xdigit": frozenset(b"0123456789abcdefABCDEF"),
}


class MalformedClassError(Exception):
    """A class wildmatch can never match (unterminated, or an unknown [:name:]); says why."""


def parse_class(pattern: bytes, start: int) -> tuple[frozenset[int], int]:
    """Parse a class whose "[" is just before ``start``; return its bytes and the index after it.

    A port of the class loop in rsync's dowild(), quirks included: the first member is taken
    literally even if it is "]", a range's start is a member on its own (so "[z-a]" matches "z"),
    and "[[:alpha]" without the closing ":]" is a set holding "[", ":" and "alpha".
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
            raise MalformedClassError('unterminated "["')
        if ch == _BACKSLASH:
            p += 1
            ch = at(p)
            if ch == 0:
                raise MalformedClassError('unterminated "["')
            members.add(ch)
        elif ch == _DASH and prev and at(p + 1) and at(p + 1) != _CLOSE:
            p += 1
            ch = at(p)
            if ch == _BACKSLASH:
                p += 1
                ch = at(p)
                if ch == 0:
                    raise MalformedClassError('unterminated "["')
            members.update(range(prev, ch + 1))
            ch = 0  # a range never starts another range
        elif ch == _OPEN and at(p + 1) == _COLON:
            name_start = p + 2
            p = name_start
            while at(p) and at(p) != _CLOSE:
                p += 1
            if not at(p):
                raise MalformedClassError('unterminated "["')
            if p - name_start - 1 < 0 or pattern[p - 1] != _COLON:
                p = name_start - 2
                ch = _OPEN
                members.add(ch)
            else:
                name = pattern[name_start : p - 1]
                if name not in POSIX_CLASSES:
                    raise MalformedClassError(
                        f"unknown character class [:{name.decode(errors='replace')}:]"
                    )
                members.update(POSIX_CLASSES[name])
                ch = 0
        else:
            members.add(ch)
        prev = ch
        p += 1
        ch = at(p)
        if ch == _CLOSE:
            break
    if negated:
        members = set(range(1, 256)) - members
    # No class matches "/" in rsync, not even a negated one.
    members.discard(_SLASH)
    members.discard(0)
    return frozenset(members), p + 1


def byte_class(members: frozenset[int]) -> bytes:
    """Render a set of bytes as a regex class of ranges; an empty set never matches."""
    if not members:
        return b"(?!)"
    ranges: list[bytes] = []
    ordered = sorted(members)
    low = high = ordered[0]
    for c in [*ordered[1:], -1]:
        if c == high + 1:
            high = c
            continue
        ranges.append(b"\\x%02x" % low if low == high else b"\\x%02x-\\x%02x" % (low, high))
        low = high = c
    return b"[" + b"".join(ranges) + b"]"
