"""The TOML config file: its top-level settings and [[pair]] tables, checked for keys and types."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from pylsyncd.config.types import (
    PAIR_SETTINGS,
    PROCESS_KEYS,
    ConfigFile,
    DeleteMode,
    Layer,
    PairSpec,
)
from pylsyncd.config.values import (
    check_patterns,
    parse_backend,
    parse_delay,
    parse_delete,
    parse_grace,
    parse_id,
    parse_log_level,
    parse_poll_interval,
    parse_status_file,
    parse_watch,
    read_exclude_file,
    read_file,
)
from pylsyncd.errors import ConfigError

_PAIR_KEYS = ("source", "destination", *PAIR_SETTINGS)
_TOP_KEYS = (*PAIR_SETTINGS, *PROCESS_KEYS, "pair")

T = TypeVar("T")


def load_file(path: str, label: str) -> ConfigFile:
    """The TOML file's top-level settings and its [[pair]] tables, checked for keys and types."""
    import tomllib  # here, not at the top: most starts have no file, and every import costs

    data = read_file(path, label)
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{label} file {path!r} is not valid TOML: {error}; fix it") from None
    base_dir = os.path.dirname(os.path.abspath(path))
    _check_keys(document, _TOP_KEYS, f"{path}: ")
    tables = document.get("pair", [])
    if isinstance(tables, dict):
        raise ConfigError(f"{path}: [pair] holds one table: write [[pair]] before each pair")
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise _wrong_type(f"{path}: pair", tables, "a list of [[pair]] tables")
    pairs = []
    for number, table in enumerate(tables, 1):
        where = f"{path} pair {number}: "
        _check_keys(table, _PAIR_KEYS, where)
        for key in ("source", "destination"):
            if key not in table:
                raise ConfigError(f"{where}{key} is missing: give each [[pair]] both paths")
        pairs.append(
            PairSpec(
                source=_toml_text(table["source"], where + "source", "a path string"),
                destination=_toml_text(
                    table["destination"], where + "destination", "a path string"
                ),
                source_label=where + "source",
                destination_label=where + "destination",
                layer=_table_layer(table, where, base_dir),
            )
        )
    return ConfigFile(top=_table_layer(document, f"{path}: ", base_dir), pairs=tuple(pairs))


def _check_keys(table: Mapping[str, object], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key in allowed:
            continue
        if key in PROCESS_KEYS:
            raise ConfigError(
                f"{where}{key} applies to the whole daemon: move it to the top of the file, "
                "above the first [[pair]]"
            )
        import difflib  # only for an error message

        close = difflib.get_close_matches(key, allowed, n=1)
        fix = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(allowed)}"
        raise ConfigError(f"{where}unknown key {key!r}: {fix}")


def _table_layer(table: Mapping[str, object], where: str, base_dir: str) -> Layer:
    """Settings of one TOML table; `where` prefixes labels ("f.toml: ", "f.toml pair 2: ")."""

    def get(key: str, parse: Callable[[object, str], T]) -> T | None:
        return parse(table[key], where + key) if key in table else None

    def excludes(value: object, label: str) -> tuple[str, ...]:
        return check_patterns(_toml_strings(value, label), label)

    def exclude_from(value: object, label: str) -> tuple[str, ...]:
        # Relative to the config file, so a file and its exclude list can move together.
        path = os.path.join(base_dir, _toml_text(value, label, "a file path"))
        return read_exclude_file(path, label)

    def text_of(parse: Callable[[str, str], T]) -> Callable[[object, str], T]:
        return lambda value, label: parse(_toml_text(value, label, "a string"), label)

    return Layer(
        excludes=get("excludes", excludes),
        exclude_from=get("exclude_from", exclude_from),
        delay=get("delay", lambda value, label: _toml_seconds(value, label, parse_delay)),
        backend=get("backend", text_of(parse_backend)),
        delete=get("delete", _toml_delete),
        init=get("init", _toml_bool),
        rsync_args=get("rsync_args", _toml_strings),
        allow_empty_source=get("allow_empty_source", _toml_bool),
        watch=get("watch", text_of(parse_watch)),
        poll_interval=get(
            "poll_interval", lambda value, label: _toml_seconds(value, label, parse_poll_interval)
        ),
        log_level=get("log_level", text_of(parse_log_level)),
        shutdown_grace=get(
            "shutdown_grace", lambda value, label: _toml_seconds(value, label, parse_grace)
        ),
        status_file=get("status_file", text_of(parse_status_file)),
        puid=get("puid", _toml_id),
        pgid=get("pgid", _toml_id),
    )


# --- values given in the TOML file -------------------------------------------------------------


def _toml_kind(value: object) -> str:
    kinds: list[tuple[type, str]] = [(bool, "a boolean"), (int, "an integer"), (float, "a float")]
    kinds += [(str, "a string"), (list, "an array"), (dict, "a table")]
    return next((kind for type_, kind in kinds if isinstance(value, type_)), "a date or time")


def _wrong_type(label: str, value: object, expected: str) -> ConfigError:
    return ConfigError(f"{label} must be {expected}, not {_toml_kind(value)} ({value!r})")


def _toml_text(value: object, label: str, expected: str) -> str:
    if not isinstance(value, str):
        raise _wrong_type(label, value, expected)
    return value


def _toml_strings(value: object, label: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _wrong_type(label, value, 'an array of strings, e.g. [".git", "*.tmp"]')
    return tuple(value)


def _toml_id(value: object, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _wrong_type(label, value, "a numeric id such as 1000")
    return parse_id(value, label)


def _toml_bool(value: object, label: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong_type(label, value, "true or false (without quotes)")
    return value


def _toml_delete(value: object, label: str) -> DeleteMode:
    if isinstance(value, bool):
        return DeleteMode.TRUE if value else DeleteMode.FALSE
    return parse_delete(_toml_text(value, label, 'true, false, "startup" or "running"'), label)


def _toml_seconds(value: object, label: str, parse: Callable[[float, str], float]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type(label, value, "a number of seconds (without quotes)")
    return parse(value, label)
