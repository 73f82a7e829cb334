"""Configuration: the public types and their precedence (flag > env > file > default).

Every setting is declared once in `settings`; values are parsed in `values` (text) and
`toml_values` (TOML), by the kinds in `kinds`; the TOML file is read in `file` and the pairs'
paths are checked in `paths`. The types they share are exported from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from pylsyncd.config.file import load_file
from pylsyncd.config.mode_checks import check_sync_mode
from pylsyncd.config.paths import check_overlaps, check_pair_paths
from pylsyncd.config.remote import split_destinations
from pylsyncd.config.settings import (
    BY_NAME,
    DAEMON_SETTINGS,
    ENV_VARS,
    LAYERED,
    PAIR_SETTINGS,
    SETTINGS,
    Config,
    PairConfig,
    Scope,
    Setting,
)
from pylsyncd.config.types import (
    LOG_LEVELS,
    Backend,
    ConfigFile,
    DeleteMode,
    Layer,
    PairSpec,
    WatchMode,
)
from pylsyncd.config.values import split_entries
from pylsyncd.errors import ConfigError

__all__ = [
    "ENV_VARS",
    "LOG_LEVELS",
    "SETTINGS",
    "Backend",
    "Config",
    "ConfigError",
    "DeleteMode",
    "PairConfig",
    "Scope",
    "Setting",
    "WatchMode",
    "load_config",
]

_CONFIG = BY_NAME["config"]
# The keys of load_config's `flags`: a setting's name, and "paths" for the SRC DST arguments.
_FLAG_KEYS = frozenset(("paths", _CONFIG.name, *(setting.name for setting in LAYERED)))
_NO_PAIRS = (
    "no directories to mirror: give SRC DST arguments, SOURCES and DESTINATIONS, "
    "or [[pair]] tables in a --config file"
)


def load_config(flags: Mapping[str, Any] | None, environ: Mapping[str, str]) -> Config:
    """Resolve flags, environment and config file into a checked Config (raises ConfigError).

    `flags` is what the command line gave, keyed by setting name (the parsed arguments of
    `pylsyncd.cli.build_parser`): "paths" holds SRC DST SRC DST ..., a value is None or absent
    where its flag was not given. Every value given is checked, even one that a higher level
    overrides. Only the TOML file and exclude files are read; nothing on disk is created.
    """
    flags = flags or {}
    unknown = set(flags) - _FLAG_KEYS
    if unknown:
        raise TypeError(f"load_config: no setting is named {', '.join(sorted(unknown))}")
    flag_layer = _flag_layer(flags)
    env_layer = _env_layer(environ)
    if flags.get(_CONFIG.name) is not None:
        config_file = load_file(flags[_CONFIG.name], _CONFIG.flag)
    elif environ.get(_CONFIG.env):
        config_file = load_file(environ[_CONFIG.env], _CONFIG.env)
    else:
        config_file = ConfigFile()
    pairs = tuple(
        _pair_config(spec, _overlay(flag_layer, env_layer, spec.layer, config_file.top))
        for spec in _pair_specs(tuple(flags.get("paths") or ()), environ, config_file)
    )
    check_overlaps(pairs)
    daemon = _overlay(flag_layer, env_layer, config_file.top)
    _check_can_give_away(daemon)
    return Config(pairs=pairs, **_given(daemon, DAEMON_SETTINGS))


def _check_can_give_away(daemon: Layer) -> None:
    """PUID/PGID other than our own need root: chown would fail on every file, at every retry."""
    euid = os.geteuid()
    if euid == 0:
        return
    puid, pgid = daemon.get("puid"), daemon.get("pgid")
    own_user = puid in (None, euid)
    own_group = pgid in (None, os.getegid(), *os.getgroups())
    if own_user and own_group:
        return
    given = " ".join(
        f"{name}={value}" for name, value in (("PUID", puid), ("PGID", pgid)) if value is not None
    )
    raise ConfigError(
        f"{given}: only root can give files to another owner and this runs as uid {euid}; "
        "run as root or unset PUID and PGID"
    )


def _overlay(*layers: Layer) -> Layer:
    """For each setting, the value of the first layer that gives it."""
    chosen: dict[str, Any] = {}
    for layer in reversed(layers):
        chosen.update(layer)
    return chosen


def _given(layer: Layer, settings: Sequence[Setting]) -> dict[str, Any]:
    """The `settings` that the layer gives, so that the dataclass defaults fill in the rest."""
    return {setting.name: layer[setting.name] for setting in settings if setting.name in layer}


def _pair_config(spec: PairSpec, layer: Layer) -> PairConfig:
    source, destination, remote = check_pair_paths(spec)
    fields = _given(layer, [setting for setting in PAIR_SETTINGS if not setting.adds_to])
    for setting in PAIR_SETTINGS:
        if setting.adds_to and setting.name in layer:
            base = fields.get(setting.adds_to, BY_NAME[setting.adds_to].default)
            fields[setting.adds_to] = base + layer[setting.name]
    if remote is not None:
        # The direct backend writes with file-system calls, which reach no other host: unset,
        # BACKEND means rsync for a remote destination; asked for by name, it is a mistake.
        if fields.get("backend", Backend.RSYNC) is not Backend.RSYNC:
            raise ConfigError(
                f"BACKEND=direct cannot write to remote destination {destination}: "
                "the direct backend is local only; use BACKEND=rsync or leave it unset"
            )
        fields["backend"] = Backend.RSYNC
    pair = PairConfig(source=source, destination=destination, remote=remote, **fields)
    check_sync_mode(pair)
    return pair


# --- the layers -------------------------------------------------------------------------------


def _flag_layer(flags: Mapping[str, Any]) -> Layer:
    return {
        setting.name: setting.from_flag(flags[setting.name])
        for setting in LAYERED
        if flags.get(setting.name) is not None
    }


def _env_layer(environ: Mapping[str, str]) -> Layer:
    # Empty counts as unset: compose files often carry `EXCLUDES=` as a placeholder, and the
    # seed image read an empty EXCLUDES as "exclude every directory".
    return {
        setting.name: setting.from_text(environ[setting.env], setting.env)
        for setting in LAYERED
        if environ.get(setting.env, "")
    }


# --- the pairs -------------------------------------------------------------------------------


def _pair_specs(
    paths: Sequence[str], environ: Mapping[str, str], config_file: ConfigFile
) -> tuple[PairSpec, ...]:
    """Pairs from the arguments, else from SOURCES/DESTINATIONS, else from the file."""
    if paths:
        if len(paths) % 2:
            raise ConfigError(
                f"the last path argument {paths[-1]!r} has no destination: "
                "give arguments as SRC DST pairs"
            )
        return tuple(
            PairSpec(source, destination, "SRC argument", "DST argument")
            for source, destination in zip(paths[::2], paths[1::2], strict=True)
        )
    sources, destinations = environ.get("SOURCES", ""), environ.get("DESTINATIONS", "")
    if sources or destinations:
        return _env_pair_specs(sources, destinations)
    if config_file.pairs:
        return config_file.pairs
    raise ConfigError(_NO_PAIRS)


def _env_pair_specs(sources: str, destinations: str) -> tuple[PairSpec, ...]:
    if not destinations:
        raise ConfigError(
            "SOURCES is set but DESTINATIONS is not: give one destination per source, "
            "in the same order"
        )
    if not sources:
        raise ConfigError(
            "DESTINATIONS is set but SOURCES is not: give one source per destination, "
            "in the same order"
        )
    source_list = split_entries(sources, "SOURCES", "paths")
    destination_list = split_destinations(destinations, "DESTINATIONS")
    if len(source_list) != len(destination_list):
        entries = "entry" if len(source_list) == 1 else "entries"
        raise ConfigError(
            f"SOURCES has {len(source_list)} {entries} but DESTINATIONS has "
            f"{len(destination_list)}: give one destination per source, in the same order"
        )
    return tuple(
        PairSpec(source, destination, "SOURCES entry", "DESTINATIONS entry")
        for source, destination in zip(source_list, destination_list, strict=True)
    )
