"""The TOML config file: its top-level settings and [[pair]] tables, checked for keys and types."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from pylsyncd.config.settings import DAEMON_SETTINGS, LAYERED, PAIR_SETTINGS
from pylsyncd.config.toml_values import toml_text, wrong_type
from pylsyncd.config.types import ConfigFile, Layer, PairSpec
from pylsyncd.config.values import read_file
from pylsyncd.errors import ConfigError

_PAIR_KEYS = ("source", "destination", *(setting.name for setting in PAIR_SETTINGS))
_TOP_KEYS = (*(setting.name for setting in (*PAIR_SETTINGS, *DAEMON_SETTINGS)), "pair")
_DAEMON_KEYS = tuple(setting.name for setting in DAEMON_SETTINGS)


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
        raise wrong_type(f"{path}: pair", tables, "a list of [[pair]] tables")
    pairs = []
    for number, table in enumerate(tables, 1):
        where = f"{path} pair {number}: "
        _check_keys(table, _PAIR_KEYS, where)
        for key in ("source", "destination"):
            if key not in table:
                raise ConfigError(f"{where}{key} is missing: give each [[pair]] both paths")
        pairs.append(
            PairSpec(
                source=toml_text(table["source"], where + "source", "a path string"),
                destination=toml_text(table["destination"], where + "destination", "a path string"),
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
        if key in _DAEMON_KEYS:
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
    return {
        setting.name: setting.from_toml(table[setting.name], where + setting.name, base_dir)
        for setting in LAYERED
        if setting.name in table
    }
