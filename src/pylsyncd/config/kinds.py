"""Kinds of setting values: how each is parsed from text (flag, env) and from TOML, and written.

A setting's declaration (in `settings`) names its kind; the flag, env and TOML layers, the
argument parser and `check` then treat every setting of a kind alike.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pylsyncd.config.rsync_args import check_rsync_args
from pylsyncd.config.toml_values import (
    toml_bool,
    toml_id,
    toml_seconds,
    toml_size,
    toml_strings,
    toml_text,
)
from pylsyncd.config.values import (
    check_patterns,
    check_ssh_args,
    parse_bool,
    parse_excludes,
    parse_id,
    parse_remote_python,
    parse_rsync_args,
    parse_size,
    parse_ssh_args,
    read_exclude_file,
)

# (text, label) -> value; the label names where the text came from ("--delay", "DELAY").
TextParser = Callable[[str, str], Any]
# (value, label, directory of the config file) -> value.
TomlParser = Callable[[object, str, str], Any]


class FlagForm(Enum):
    """How a setting appears on the command line."""

    VALUE = "value"  # --name VALUE
    REPEATED = "repeated"  # --name VALUE, once per value; together they are the setting's value
    SWITCH = "switch"  # --name / --no-name
    POSITIONAL = "positional"  # a place in the SRC DST arguments


@dataclass(frozen=True)
class Kind:
    """How values of one kind are parsed; `metavar`, `choices` and `unit` are for the help."""

    from_text: TextParser
    from_toml: TomlParser
    metavar: str = ""
    choices: tuple[str, ...] = ()
    unit: str = ""  # written after the value by `check`: "0.02 s"
    form: FlagForm = FlagForm.VALUE
    # A REPEATED flag's values, all at once: (values, label) -> value.
    from_flags: Callable[[tuple[str, ...], str], Any] | None = None
    # How a value is written, when not as `written` does: a size as 16M.
    write: Callable[[Any], str] | None = None


def written(value: object) -> str:
    """A value as `check`, --help and README write it: none, true, 0.02, direct, -z '--a b'."""
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return shlex.join(value) if value else "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def seconds(parse: Callable[[str | float, str], float]) -> Kind:
    """A number of seconds, checked by `parse`; TOML takes it as a number, not a string."""
    return Kind(
        from_text=parse,
        from_toml=lambda value, label, _: toml_seconds(value, label, parse),
        metavar="SECONDS",
        unit="s",
    )


def choice(parse: TextParser, choices: Sequence[str], *, toml_booleans: bool = False) -> Kind:
    """One of `choices`, in any case; with `toml_booleans`, TOML's true and false also name one."""
    words = [f'"{word}"' for word in choices if word not in ("true", "false")]
    expected = f"true, false, {' or '.join(words)}" if toml_booleans else "a string"

    def from_toml(value: object, label: str, _: str) -> Any:
        if toml_booleans and isinstance(value, bool):
            return parse("true" if value else "false", label)
        return parse(toml_text(value, label, expected), label)

    return Kind(
        from_text=parse,
        from_toml=from_toml,
        metavar="{" + ",".join(choices) + "}",
        choices=tuple(choices),
    )


def enum_values(enum: type[Enum]) -> tuple[str, ...]:
    """The values of an Enum whose values are the words users write."""
    return tuple(str(member.value) for member in enum)


def absolute_file(parse: TextParser) -> Kind:
    """A path checked by `parse`."""
    return Kind(
        from_text=parse,
        from_toml=lambda value, label, _: parse(toml_text(value, label, "a string"), label),
        metavar="PATH",
    )


def _toml_patterns(value: object, label: str, _: str) -> tuple[str, ...]:
    return check_patterns(toml_strings(value, label), label)


def _toml_pattern_file(value: object, label: str, base_dir: str) -> tuple[str, ...]:
    # Relative to the config file, so a file and its exclude list can move together.
    path = os.path.join(base_dir, toml_text(value, label, "a file path"))
    return read_exclude_file(path, label)


SWITCH = Kind(
    from_text=parse_bool,
    from_toml=lambda value, label, _: toml_bool(value, label),
    form=FlagForm.SWITCH,
)
ARGUMENTS = Kind(
    from_text=parse_rsync_args,
    from_toml=lambda value, label, _: check_rsync_args(
        toml_strings(value, label, '["-z", "--bwlimit=1M"]'), label
    ),
    metavar="ARGS",
)
SSH_ARGUMENTS = Kind(
    from_text=parse_ssh_args,
    from_toml=lambda value, label, _: check_ssh_args(
        toml_strings(value, label, '["-p", "2222", "-i", "/keys/id_ed25519"]'), label
    ),
    metavar="ARGS",
)
REMOTE_PYTHON = Kind(
    from_text=parse_remote_python,
    from_toml=lambda value, label, _: parse_remote_python(
        toml_text(value, label, 'a command, e.g. "python3", or "off"'), label
    ),
    metavar="COMMAND",
)
# Exclude patterns: ':'-separated in the environment, one per flag, a TOML array.
PATTERNS = Kind(
    from_text=parse_excludes,
    from_toml=_toml_patterns,
    metavar="PATTERN",
    form=FlagForm.REPEATED,
    from_flags=check_patterns,
)
# A file of exclude patterns; the setting's value is the patterns read from it.
PATTERN_FILE = Kind(from_text=read_exclude_file, from_toml=_toml_pattern_file, metavar="FILE")
NUMERIC_ID = Kind(
    from_text=parse_id,
    from_toml=lambda value, label, _: toml_id(value, label),
    metavar="ID",
)
# A size in bytes: 16M, 64KiB, 1048576; TOML takes an integer or such a string.
SIZE = Kind(
    from_text=parse_size,
    from_toml=lambda value, label, _: toml_size(value, label),
    metavar="BYTES",
    write=lambda size: written_size(int(size)),
)


def written_size(size: int) -> str:
    """A size as it may be given: 16M for 16 MiB, 1536K, 1000 (bytes)."""
    for unit in "TGMK":
        scale = 1024 ** ("KMGT".index(unit) + 1)
        if size and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)
