"""Setting values given in the TOML file, checked for their TOML type before they are parsed."""

from __future__ import annotations

from collections.abc import Callable

from pylsyncd.config.values import parse_id, parse_size
from pylsyncd.errors import ConfigError


def toml_kind(value: object) -> str:
    """What TOML calls the value's type, with an article: "an integer", "a string"."""
    kinds: list[tuple[type, str]] = [(bool, "a boolean"), (int, "an integer"), (float, "a float")]
    kinds += [(str, "a string"), (list, "an array"), (dict, "a table")]
    return next((kind for type_, kind in kinds if isinstance(value, type_)), "a date or time")


def wrong_type(label: str, value: object, expected: str) -> ConfigError:
    """The error for a value of the wrong TOML type; `expected` says what to write instead."""
    return ConfigError(f"{label} must be {expected}, not {toml_kind(value)} ({value!r})")


def toml_text(value: object, label: str, expected: str) -> str:
    """The value, once it is known to be a string."""
    if not isinstance(value, str):
        raise wrong_type(label, value, expected)
    return value


def toml_strings(value: object, label: str, example: str = '[".git", "*.tmp"]') -> tuple[str, ...]:
    """An array of strings, as a tuple; `example` is one for this setting."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise wrong_type(label, value, f"an array of strings, e.g. {example}")
    return tuple(value)


def toml_id(value: object, label: str) -> int:
    """A user or group id, given as an integer or a string of digits."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise wrong_type(label, value, "a numeric id such as 1000")
    return parse_id(value, label)


def toml_size(value: object, label: str) -> int:
    """A size in bytes, given as an integer or a string such as "16M"."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise wrong_type(label, value, 'a size such as 16777216 or "16M"')
    return parse_size(value, label)


def toml_bool(value: object, label: str) -> bool:
    """A TOML boolean; a string such as "yes" is refused, unlike in the environment."""
    if not isinstance(value, bool):
        raise wrong_type(label, value, "true or false (without quotes)")
    return value


def toml_seconds(value: object, label: str, parse: Callable[[float, str], float]) -> float:
    """A number of seconds, given as a TOML number (not a string), checked by `parse`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong_type(label, value, "a number of seconds (without quotes)")
    return parse(value, label)
