"""Configuration: dataclasses, parsing, validation and precedence (flag > env > file > default)."""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import os
import shlex
import threading
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar


class Backend(Enum):
    """How a batch of changes reaches the destination."""

    DIRECT = "direct"  # in-process file operations
    RSYNC = "rsync"  # one rsync process per batch


class DeleteMode(Enum):
    """lsyncd's `delete`: when what the source no longer has is removed from the destination."""

    TRUE = "true"  # at the initial sync and while running
    FALSE = "false"  # never
    STARTUP = "startup"  # only at the initial sync
    RUNNING = "running"  # only while running

    @property
    def at_startup(self) -> bool:
        return self in (DeleteMode.TRUE, DeleteMode.STARTUP)

    @property
    def while_running(self) -> bool:
        return self in (DeleteMode.TRUE, DeleteMode.RUNNING)


class ConfigError(Exception):
    """Bad configuration: the message is one line naming the bad value and the fix (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class PairConfig:
    """One source -> destination mirror and the settings that apply to it."""

    source: str  # absolute, normalised path of an existing directory
    destination: str  # absolute, normalised path (created at start when missing)
    excludes: tuple[str, ...] = ()  # rsync exclude patterns, EXCLUDES then EXCLUDE_FROM's lines
    delay: float = 0.02
    backend: Backend = Backend.DIRECT
    delete: DeleteMode = DeleteMode.TRUE
    init: bool = True
    rsync_args: tuple[str, ...] = ()
    allow_empty_source: bool = False


@dataclass(frozen=True)
class Config:
    """Everything the daemon needs: the pairs plus process-wide settings."""

    pairs: tuple[PairConfig, ...]
    log_level: str = "info"
    shutdown_grace: float = 10.0


LOG_LEVELS = ("debug", "info", "warning", "error")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")
# Per-pair settings that are PairConfig fields of the same name; excludes and exclude_from are
# joined into PairConfig.excludes.
_PLAIN_SETTINGS = ("delay", "backend", "delete", "init", "rsync_args", "allow_empty_source")
_PAIR_SETTINGS = ("excludes", "exclude_from", *_PLAIN_SETTINGS)
_PROCESS_KEYS = ("log_level", "shutdown_grace")
_PAIR_KEYS = ("source", "destination", *_PAIR_SETTINGS)
_TOP_KEYS = (*_PAIR_SETTINGS, *_PROCESS_KEYS, "pair")
# Every environment variable the daemon reads: each is its setting's name in upper case.
ENV_VARS = tuple(
    name.upper() for name in ("sources", "destinations", *_PAIR_SETTINGS, *_PROCESS_KEYS, "config")
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


@dataclass(frozen=True)
class _Layer:
    """What one place (flags, env, a TOML table) sets, parsed; None where it says nothing."""

    excludes: tuple[str, ...] | None = None
    exclude_from: tuple[str, ...] | None = None  # the patterns read from the file
    delay: float | None = None
    backend: Backend | None = None
    delete: DeleteMode | None = None
    init: bool | None = None
    rsync_args: tuple[str, ...] | None = None
    allow_empty_source: bool | None = None
    log_level: str | None = None
    shutdown_grace: float | None = None


@dataclass(frozen=True)
class _PairSpec:
    """One pair as given, before its paths are checked; labels say where it came from."""

    source: str
    destination: str
    source_label: str
    destination_label: str
    layer: _Layer = _Layer()


@dataclass(frozen=True)
class _ConfigFile:
    top: _Layer = _Layer()
    pairs: tuple[_PairSpec, ...] = ()


def load_config(flags: Flags | None, environ: Mapping[str, str]) -> Config:
    """Resolve flags, environment and config file into a checked Config (raises ConfigError).

    Every value given is checked, even one that a higher level overrides. Only the TOML file and
    exclude files are read; nothing on disk is created or written.
    """
    flags = flags or Flags()
    flag_layer = _flag_layer(flags)
    env_layer = _env_layer(environ)
    if flags.config is not None:
        config_file = _load_file(flags.config, "--config")
    elif environ.get("CONFIG"):
        config_file = _load_file(environ["CONFIG"], "CONFIG")
    else:
        config_file = _ConfigFile()
    pairs = tuple(
        _pair_config(spec, _overlay(flag_layer, env_layer, spec.layer, config_file.top))
        for spec in _pair_specs(flags.paths, environ, config_file)
    )
    _check_overlaps(pairs)
    daemon = _overlay(flag_layer, env_layer, config_file.top)
    return Config(pairs=pairs, **_given(daemon, _PROCESS_KEYS))


def _overlay(*layers: _Layer) -> _Layer:
    """For each setting, the value of the first layer that gives it."""
    chosen: dict[str, Any] = {}
    for field in dataclasses.fields(_Layer):
        values = (getattr(layer, field.name) for layer in layers)
        chosen[field.name] = next((value for value in values if value is not None), None)
    return _Layer(**chosen)


def _given(layer: _Layer, names: Sequence[str]) -> dict[str, Any]:
    """The settings among `names` that the layer gives, so the dataclass defaults fill the rest."""
    return {name: getattr(layer, name) for name in names if getattr(layer, name) is not None}


def _pair_config(spec: _PairSpec, layer: _Layer) -> PairConfig:
    source, destination = _check_pair_paths(spec)
    return PairConfig(
        source=source,
        destination=destination,
        excludes=(layer.excludes or ()) + (layer.exclude_from or ()),
        **_given(layer, _PLAIN_SETTINGS),
    )


# --- the layers -------------------------------------------------------------------------------


def _flag_layer(flags: Flags) -> _Layer:
    def get(text: str | None, flag: str, parse: Callable[[str, str], T]) -> T | None:
        return None if text is None else parse(text, flag)

    return _Layer(
        excludes=None if flags.excludes is None else _check_patterns(flags.excludes, "--exclude"),
        exclude_from=get(flags.exclude_from, "--exclude-from", _read_exclude_file),
        delay=get(flags.delay, "--delay", _parse_delay),
        backend=get(flags.backend, "--backend", _parse_backend),
        delete=get(flags.delete, "--delete", _parse_delete),
        init=flags.init,
        rsync_args=get(flags.rsync_args, "--rsync-args", _parse_rsync_args),
        allow_empty_source=flags.allow_empty_source,
        log_level=get(flags.log_level, "--log-level", _parse_log_level),
        shutdown_grace=get(flags.shutdown_grace, "--shutdown-grace", _parse_grace),
    )


def _env_layer(environ: Mapping[str, str]) -> _Layer:
    def get(name: str, parse: Callable[[str, str], T]) -> T | None:
        # Empty counts as unset: compose files often carry `EXCLUDES=` as a placeholder, and the
        # seed image read an empty EXCLUDES as "exclude every directory".
        text = environ.get(name, "")
        return parse(text, name) if text else None

    return _Layer(
        excludes=get("EXCLUDES", _parse_excludes),
        exclude_from=get("EXCLUDE_FROM", _read_exclude_file),
        delay=get("DELAY", _parse_delay),
        backend=get("BACKEND", _parse_backend),
        delete=get("DELETE", _parse_delete),
        init=get("INIT", _parse_bool),
        rsync_args=get("RSYNC_ARGS", _parse_rsync_args),
        allow_empty_source=get("ALLOW_EMPTY_SOURCE", _parse_bool),
        log_level=get("LOG_LEVEL", _parse_log_level),
        shutdown_grace=get("SHUTDOWN_GRACE", _parse_grace),
    )


def _table_layer(table: Mapping[str, object], where: str, base_dir: str) -> _Layer:
    """Settings of one TOML table; `where` prefixes labels ("f.toml: ", "f.toml pair 2: ")."""

    def get(key: str, parse: Callable[[object, str], T]) -> T | None:
        return parse(table[key], where + key) if key in table else None

    def excludes(value: object, label: str) -> tuple[str, ...]:
        return _check_patterns(_toml_strings(value, label), label)

    def exclude_from(value: object, label: str) -> tuple[str, ...]:
        # Relative to the config file, so a file and its exclude list can move together.
        path = os.path.join(base_dir, _toml_text(value, label, "a file path"))
        return _read_exclude_file(path, label)

    def text_of(parse: Callable[[str, str], T]) -> Callable[[object, str], T]:
        return lambda value, label: parse(_toml_text(value, label, "a string"), label)

    return _Layer(
        excludes=get("excludes", excludes),
        exclude_from=get("exclude_from", exclude_from),
        delay=get("delay", lambda value, label: _toml_seconds(value, label, _parse_delay)),
        backend=get("backend", text_of(_parse_backend)),
        delete=get("delete", _toml_delete),
        init=get("init", _toml_bool),
        rsync_args=get("rsync_args", _toml_strings),
        allow_empty_source=get("allow_empty_source", _toml_bool),
        log_level=get("log_level", text_of(_parse_log_level)),
        shutdown_grace=get(
            "shutdown_grace", lambda value, label: _toml_seconds(value, label, _parse_grace)
        ),
    )


# --- values given as text (flags, environment) -------------------------------------------------


def _invalid(label: str, value: object, fix: str) -> ConfigError:
    return ConfigError(f"{label}={value!r} is not valid: {fix}")


def _choose(text: str, label: str, options: Sequence[str]) -> str:
    word = text.strip().lower()
    if word not in options:
        raise _invalid(label, text, f"use one of {', '.join(options)}")
    return word


def _parse_backend(text: str, label: str) -> Backend:
    return Backend(_choose(text, label, [backend.value for backend in Backend]))


def _parse_delete(text: str, label: str) -> DeleteMode:
    return DeleteMode(_choose(text, label, [mode.value for mode in DeleteMode]))


def _parse_log_level(text: str, label: str) -> str:
    return _choose(text, label, LOG_LEVELS)


def _parse_bool(text: str, label: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS or word in _FALSE_WORDS:
        return word in _TRUE_WORDS
    raise _invalid(label, text, "use true or false (or yes/no, on/off, 1/0)")


def _parse_seconds(given: str | float, label: str, *, allow_zero: bool, example: str) -> float:
    try:
        value = float(given)
    except ValueError:
        value = math.nan
    # nan and inf fail these comparisons too; past TIMEOUT_MAX a thread's wait() raises
    # OverflowError instead of waiting.
    if (value > 0 or (allow_zero and value == 0)) and value <= threading.TIMEOUT_MAX:
        return value
    bound = ">= 0" if allow_zero else "> 0"
    raise _invalid(label, given, f"give a number of seconds {bound}, e.g. {example}")


def _parse_delay(given: str | float, label: str) -> float:
    return _parse_seconds(given, label, allow_zero=True, example="0.02")


def _parse_grace(given: str | float, label: str) -> float:
    return _parse_seconds(given, label, allow_zero=False, example="10")


def _parse_rsync_args(text: str, label: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(text))
    except ValueError as error:
        raise ConfigError(
            f"{label}={text!r} cannot be split into arguments ({error}): quote it as in a shell"
        ) from None


def _split_entries(text: str, label: str, what: str) -> list[str]:
    entries = text.split(":")
    if "" in entries:
        raise ConfigError(
            f"{label}={text!r} has an empty entry: separate {what} with a single ':' "
            "and put none at either end"
        )
    return entries


def _parse_excludes(text: str, label: str) -> tuple[str, ...]:
    return _check_patterns(tuple(_split_entries(text, label, "patterns")), label)


def _read(path: str, label: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise ConfigError(f"{label} file {path!r} does not exist: fix the path") from None
    except OSError as error:
        raise ConfigError(
            f"{label} file {path!r} cannot be read ({error.strerror}): fix the path or permissions"
        ) from None


def _read_exclude_file(path: str, label: str) -> tuple[str, ...]:
    """rsync's --exclude-from format: one pattern a line; blank, '#' and ';' lines are ignored."""
    # Undecodable bytes stay as the file names they stand for; CRLF (a file written on a
    # Windows host) ends a line like LF.
    text = _read(path, label).decode("utf-8", "surrogateescape")
    lines = text.replace("\r\n", "\n").split("\n")
    patterns = (line for line in lines if line.strip() and not line.startswith(("#", ";")))
    return _check_patterns(tuple(patterns), f"{label} file {path!r}")


def _check_patterns(patterns: tuple[str, ...], origin: str) -> tuple[str, ...]:
    if "" in patterns:
        raise ConfigError(f"{origin} has an empty exclude pattern: remove it")
    try:
        from pylsyncd.excludes import ExcludeRules
    except ModuleNotFoundError as error:
        if error.name != "pylsyncd.excludes":
            raise
        return patterns
    try:
        ExcludeRules(patterns)
    except ValueError as error:
        raise ConfigError(f"{origin}: {error}; fix or remove that pattern") from None
    return patterns


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


def _toml_bool(value: object, label: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong_type(label, value, "true or false (without quotes)")
    return value


def _toml_delete(value: object, label: str) -> DeleteMode:
    if isinstance(value, bool):
        return DeleteMode.TRUE if value else DeleteMode.FALSE
    return _parse_delete(_toml_text(value, label, 'true, false, "startup" or "running"'), label)


def _toml_seconds(value: object, label: str, parse: Callable[[float, str], float]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type(label, value, "a number of seconds (without quotes)")
    return parse(value, label)


def _load_file(path: str, label: str) -> _ConfigFile:
    """The TOML file's top-level settings and its [[pair]] tables, checked for keys and types."""
    data = _read(path, label)
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
            _PairSpec(
                source=_toml_text(table["source"], where + "source", "a path string"),
                destination=_toml_text(
                    table["destination"], where + "destination", "a path string"
                ),
                source_label=where + "source",
                destination_label=where + "destination",
                layer=_table_layer(table, where, base_dir),
            )
        )
    return _ConfigFile(top=_table_layer(document, f"{path}: ", base_dir), pairs=tuple(pairs))


def _check_keys(table: Mapping[str, object], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key in allowed:
            continue
        if key in _PROCESS_KEYS:
            raise ConfigError(
                f"{where}{key} applies to the whole daemon: move it to the top of the file, "
                "above the first [[pair]]"
            )
        close = difflib.get_close_matches(key, allowed, n=1)
        fix = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(allowed)}"
        raise ConfigError(f"{where}unknown key {key!r}: {fix}")


# --- the pairs -------------------------------------------------------------------------------


def _pair_specs(
    paths: Sequence[str], environ: Mapping[str, str], config_file: _ConfigFile
) -> tuple[_PairSpec, ...]:
    """Pairs from the arguments, else from SOURCES/DESTINATIONS, else from the file."""
    if paths:
        if len(paths) % 2:
            raise ConfigError(
                f"the last path argument {paths[-1]!r} has no destination: "
                "give arguments as SRC DST pairs"
            )
        return tuple(
            _PairSpec(source, destination, "SRC argument", "DST argument")
            for source, destination in zip(paths[::2], paths[1::2], strict=True)
        )
    sources, destinations = environ.get("SOURCES", ""), environ.get("DESTINATIONS", "")
    if sources or destinations:
        return _env_pair_specs(sources, destinations)
    if config_file.pairs:
        return config_file.pairs
    raise ConfigError(_NO_PAIRS)


def _env_pair_specs(sources: str, destinations: str) -> tuple[_PairSpec, ...]:
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
    source_list = _split_entries(sources, "SOURCES", "paths")
    destination_list = _split_entries(destinations, "DESTINATIONS", "paths")
    if len(source_list) != len(destination_list):
        entries = "entry" if len(source_list) == 1 else "entries"
        raise ConfigError(
            f"SOURCES has {len(source_list)} {entries} but DESTINATIONS has "
            f"{len(destination_list)}: give one destination per source, in the same order"
        )
    return tuple(
        _PairSpec(source, destination, "SOURCES entry", "DESTINATIONS entry")
        for source, destination in zip(source_list, destination_list, strict=True)
    )


def _normalise(path: str, label: str) -> str:
    if "\0" in path or not os.path.isabs(path):
        raise ConfigError(f"{label} {path!r} is not an absolute path: give a path starting with /")
    normal = os.path.normpath(path)
    # POSIX lets normpath keep a leading "//"; Linux reads it as "/", and so do we.
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


def _within(inner: str, outer: str) -> bool:
    """Whether real path `inner` is strictly below real path `outer`."""
    return inner != outer and (outer == "/" or inner.startswith(outer + "/"))


def _check_pair_paths(spec: _PairSpec) -> tuple[str, str]:
    """The pair's normalised paths, after the checks that need only this pair."""
    source = _normalise(spec.source, spec.source_label)
    destination = _normalise(spec.destination, spec.destination_label)
    if not os.path.exists(source):
        raise ConfigError(
            f"{spec.source_label} {source!r} does not exist: create it or fix the path"
        )
    if not os.path.isdir(source):
        raise ConfigError(f"{spec.source_label} {source!r} is not a directory: give a directory")
    if os.path.lexists(destination) and not os.path.isdir(destination):
        raise ConfigError(
            f"{spec.destination_label} {destination!r} exists but is not a directory: "
            "give a directory, or remove what is there"
        )
    # Real paths, so that a symlink cannot hide a loop; realpath also works for a destination
    # that does not exist yet (its existing parents are resolved).
    real_source, real_destination = os.path.realpath(source), os.path.realpath(destination)
    loop = "the daemon would copy its own copies forever"
    if real_source == real_destination:
        raise ConfigError(
            f"destination {destination!r} is the same directory as its source {source!r}: "
            "give a destination outside the source"
        )
    if _within(real_destination, real_source):
        raise ConfigError(
            f"destination {destination!r} is inside its source {source!r}: {loop}; "
            "give a destination outside the source"
        )
    if _within(real_source, real_destination):
        raise ConfigError(
            f"source {source!r} is inside its destination {destination!r}: {loop}; "
            "give a destination that does not contain the source"
        )
    return source, destination


def _check_overlaps(pairs: Sequence[PairConfig]) -> None:
    """Pairs that would fight over files or mirror each other are refused."""
    real = [(os.path.realpath(pair.source), os.path.realpath(pair.destination)) for pair in pairs]
    for i, j in itertools.combinations(range(len(pairs)), 2):
        (source_i, destination_i), (source_j, destination_j) = real[i], real[j]
        both = (
            f"pairs {pairs[i].source} -> {pairs[i].destination} "
            f"and {pairs[j].source} -> {pairs[j].destination}"
        )
        if destination_i == destination_j:
            raise ConfigError(
                f"{both} share a destination: they would fight over its files; "
                "give each pair its own destination"
            )
        if _within(destination_i, destination_j) or _within(destination_j, destination_i):
            raise ConfigError(
                f"{both} have one destination inside the other: they would fight over its "
                "files; give destinations that do not overlap"
            )
        i_feeds_j = destination_i == source_j or _within(destination_i, source_j)
        j_feeds_i = destination_j == source_i or _within(destination_j, source_i)
        if i_feeds_j and j_feeds_i:
            raise ConfigError(
                f"{both} mirror each other: two-way sync is not supported; "
                "keep one direction, or sync to a third directory"
            )
