"""Configuration: the public types and their precedence (flag > env > file > default).

Values are parsed in `values`, the TOML file is read in `file` and the pairs' paths are checked in
`paths`; the types they share live in `types` and are exported from here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pylsyncd.config.file import load_file
from pylsyncd.config.paths import check_overlaps, check_pair_paths
from pylsyncd.config.types import (
    LOG_LEVELS,
    PAIR_SETTINGS,
    PLAIN_SETTINGS,
    PROCESS_KEYS,
    Backend,
    Config,
    ConfigFile,
    DeleteMode,
    Layer,
    PairConfig,
    PairSpec,
    WatchMode,
)
from pylsyncd.config.values import (
    check_patterns,
    parse_backend,
    parse_bool,
    parse_delay,
    parse_delete,
    parse_excludes,
    parse_grace,
    parse_id,
    parse_log_level,
    parse_poll_interval,
    parse_rsync_args,
    parse_status_file,
    parse_watch,
    read_exclude_file,
    split_entries,
)
from pylsyncd.errors import ConfigError

__all__ = [
    "ENV_VARS",
    "LOG_LEVELS",
    "Backend",
    "Config",
    "ConfigError",
    "DeleteMode",
    "Flags",
    "PairConfig",
    "WatchMode",
    "load_config",
]

# Every environment variable the daemon reads: each is its setting's name in upper case.
ENV_VARS = tuple(
    name.upper() for name in ("sources", "destinations", *PAIR_SETTINGS, *PROCESS_KEYS, "config")
)
_NO_PAIRS = (
    "no directories to mirror: give SRC DST arguments, SOURCES and DESTINATIONS, "
    "or [[pair]] tables in a --config file"
)

T = TypeVar("T")


@dataclass(frozen=True)
class Flags:
    """What the command line gave, as typed; None where a flag was absent."""

    paths: tuple[str, ...] = ()  # SRC DST SRC DST ...
    config: str | None = None
    excludes: tuple[str, ...] | None = None
    exclude_from: str | None = None
    delay: str | None = None
    backend: str | None = None
    delete: str | None = None
    init: bool | None = None
    log_level: str | None = None
    rsync_args: str | None = None
    allow_empty_source: bool | None = None
    shutdown_grace: str | None = None
    watch: str | None = None
    poll_interval: str | None = None
    status_file: str | None = None
    puid: str | None = None
    pgid: str | None = None


def load_config(flags: Flags | None, environ: Mapping[str, str]) -> Config:
    """Resolve flags, environment and config file into a checked Config (raises ConfigError).

    Every value given is checked, even one that a higher level overrides. Only the TOML file and
    exclude files are read; nothing on disk is created or written.
    """
    flags = flags or Flags()
    flag_layer = _flag_layer(flags)
    env_layer = _env_layer(environ)
    if flags.config is not None:
        config_file = load_file(flags.config, "--config")
    elif environ.get("CONFIG"):
        config_file = load_file(environ["CONFIG"], "CONFIG")
    else:
        config_file = ConfigFile()
    pairs = tuple(
        _pair_config(spec, _overlay(flag_layer, env_layer, spec.layer, config_file.top))
        for spec in _pair_specs(flags.paths, environ, config_file)
    )
    check_overlaps(pairs)
    daemon = _overlay(flag_layer, env_layer, config_file.top)
    _check_can_give_away(daemon)
    return Config(pairs=pairs, **_given(daemon, PROCESS_KEYS))


def _check_can_give_away(daemon: Layer) -> None:
    """PUID/PGID other than our own need root: chown would fail on every file, at every retry."""
    euid = os.geteuid()
    if euid == 0:
        return
    own_user = daemon.puid in (None, euid)
    own_group = daemon.pgid in (None, os.getegid(), *os.getgroups())
    if own_user and own_group:
        return
    given = " ".join(
        f"{name}={value}"
        for name, value in (("PUID", daemon.puid), ("PGID", daemon.pgid))
        if value is not None
    )
    raise ConfigError(
        f"{given}: only root can give files to another owner and this runs as uid {euid}; "
        "run as root or unset PUID and PGID"
    )


def _overlay(*layers: Layer) -> Layer:
    """For each setting, the value of the first layer that gives it."""
    chosen: dict[str, Any] = {}
    for field in dataclasses.fields(Layer):
        values = (getattr(layer, field.name) for layer in layers)
        chosen[field.name] = next((value for value in values if value is not None), None)
    return Layer(**chosen)


def _given(layer: Layer, names: Sequence[str]) -> dict[str, Any]:
    """The settings among `names` that the layer gives, so the dataclass defaults fill the rest."""
    return {name: getattr(layer, name) for name in names if getattr(layer, name) is not None}


def _pair_config(spec: PairSpec, layer: Layer) -> PairConfig:
    source, destination = check_pair_paths(spec)
    return PairConfig(
        source=source,
        destination=destination,
        excludes=(layer.excludes or ()) + (layer.exclude_from or ()),
        **_given(layer, PLAIN_SETTINGS),
    )


# --- the layers -------------------------------------------------------------------------------


def _flag_layer(flags: Flags) -> Layer:
    def get(text: str | None, flag: str, parse: Callable[[str, str], T]) -> T | None:
        return None if text is None else parse(text, flag)

    return Layer(
        excludes=None if flags.excludes is None else check_patterns(flags.excludes, "--exclude"),
        exclude_from=get(flags.exclude_from, "--exclude-from", read_exclude_file),
        delay=get(flags.delay, "--delay", parse_delay),
        backend=get(flags.backend, "--backend", parse_backend),
        delete=get(flags.delete, "--delete", parse_delete),
        init=flags.init,
        rsync_args=get(flags.rsync_args, "--rsync-args", parse_rsync_args),
        allow_empty_source=flags.allow_empty_source,
        log_level=get(flags.log_level, "--log-level", parse_log_level),
        shutdown_grace=get(flags.shutdown_grace, "--shutdown-grace", parse_grace),
        watch=get(flags.watch, "--watch", parse_watch),
        poll_interval=get(flags.poll_interval, "--poll-interval", parse_poll_interval),
        status_file=get(flags.status_file, "--status-file", parse_status_file),
        puid=get(flags.puid, "--puid", parse_id),
        pgid=get(flags.pgid, "--pgid", parse_id),
    )


def _env_layer(environ: Mapping[str, str]) -> Layer:
    def get(name: str, parse: Callable[[str, str], T]) -> T | None:
        # Empty counts as unset: compose files often carry `EXCLUDES=` as a placeholder, and the
        # seed image read an empty EXCLUDES as "exclude every directory".
        text = environ.get(name, "")
        return parse(text, name) if text else None

    return Layer(
        excludes=get("EXCLUDES", parse_excludes),
        exclude_from=get("EXCLUDE_FROM", read_exclude_file),
        delay=get("DELAY", parse_delay),
        backend=get("BACKEND", parse_backend),
        delete=get("DELETE", parse_delete),
        init=get("INIT", parse_bool),
        rsync_args=get("RSYNC_ARGS", parse_rsync_args),
        allow_empty_source=get("ALLOW_EMPTY_SOURCE", parse_bool),
        log_level=get("LOG_LEVEL", parse_log_level),
        shutdown_grace=get("SHUTDOWN_GRACE", parse_grace),
        watch=get("WATCH", parse_watch),
        poll_interval=get("POLL_INTERVAL", parse_poll_interval),
        status_file=get("STATUS_FILE", parse_status_file),
        puid=get("PUID", parse_id),
        pgid=get("PGID", parse_id),
    )


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
    destination_list = split_entries(destinations, "DESTINATIONS", "paths")
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
