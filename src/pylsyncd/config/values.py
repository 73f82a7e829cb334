"""Setting values given as text (flags, environment) and exclude files, parsed and checked."""

from __future__ import annotations

import math
import os
import shlex
import threading
from collections.abc import Sequence

from pylsyncd.config.types import LOG_LEVELS, Backend, DeleteMode, WatchMode
from pylsyncd.errors import ConfigError

_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")
_MAX_ID = 2**32 - 2  # (uid_t)-1 means "unchanged" to chown


def _invalid(label: str, value: object, fix: str) -> ConfigError:
    return ConfigError(f"{label}={value!r} is not valid: {fix}")


def _choose(text: str, label: str, options: Sequence[str]) -> str:
    word = text.strip().lower()
    if word not in options:
        raise _invalid(label, text, f"use one of {', '.join(options)}")
    return word


def parse_watch(text: str, label: str) -> WatchMode:
    """The WatchMode named by `text`, in any case."""
    return WatchMode(_choose(text, label, [mode.value for mode in WatchMode]))


def parse_poll_interval(given: str | float, label: str) -> float:
    """Seconds between rescans, > 0."""
    return _parse_seconds(given, label, allow_zero=False, example="1")


def parse_backend(text: str, label: str) -> Backend:
    """The Backend named by `text`, in any case."""
    return Backend(_choose(text, label, [backend.value for backend in Backend]))


def parse_delete(text: str, label: str) -> DeleteMode:
    """The DeleteMode named by `text`, in any case."""
    return DeleteMode(_choose(text, label, [mode.value for mode in DeleteMode]))


def parse_log_level(text: str, label: str) -> str:
    """One of LOG_LEVELS, in lower case."""
    return _choose(text, label, LOG_LEVELS)


def parse_id(given: str | int, label: str) -> int:
    """A user or group id for PUID/PGID: a whole number from 0 to 2**32 - 2."""
    text = str(given).strip()
    if not text.isdigit() or int(text) > _MAX_ID:
        raise _invalid(label, given, "give a numeric id such as 1000 (`id -u` on the host)")
    return int(text)


def parse_status_file(text: str, label: str) -> str:
    """An absolute path for the status file (its directory is created at start)."""
    if not os.path.isabs(text) or text.endswith("/"):
        raise _invalid(label, text, "give an absolute file path such as /run/pylsyncd/status.json")
    return os.path.normpath(text)


def parse_bool(text: str, label: str) -> bool:
    """true/false, yes/no, on/off or 1/0, in any case."""
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


def parse_delay(given: str | float, label: str) -> float:
    """A delay in seconds, >= 0."""
    return _parse_seconds(given, label, allow_zero=True, example="0.02")


def parse_grace(given: str | float, label: str) -> float:
    """A shutdown grace in seconds, > 0."""
    return _parse_seconds(given, label, allow_zero=False, example="10")


def parse_rsync_args(text: str, label: str) -> tuple[str, ...]:
    """Extra rsync arguments, split as a shell would."""
    try:
        return tuple(shlex.split(text))
    except ValueError as error:
        raise ConfigError(
            f"{label}={text!r} cannot be split into arguments ({error}): quote it as in a shell"
        ) from None


def split_entries(text: str, label: str, what: str) -> list[str]:
    """The ':'-separated entries of `text`; an empty entry is an error."""
    entries = text.split(":")
    if "" in entries:
        raise ConfigError(
            f"{label}={text!r} has an empty entry: separate {what} with a single ':' "
            "and put none at either end"
        )
    return entries


def parse_excludes(text: str, label: str) -> tuple[str, ...]:
    """':'-separated exclude patterns, checked."""
    return check_patterns(tuple(split_entries(text, label, "patterns")), label)


def read_file(path: str, label: str) -> bytes:
    """The bytes of a file the configuration names; ConfigError when it cannot be read."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise ConfigError(f"{label} file {path!r} does not exist: fix the path") from None
    except OSError as error:
        raise ConfigError(
            f"{label} file {path!r} cannot be read ({error.strerror}): fix the path or permissions"
        ) from None


def read_exclude_file(path: str, label: str) -> tuple[str, ...]:
    """rsync's --exclude-from format: one pattern a line; blank, '#' and ';' lines are ignored."""
    # Undecodable bytes stay as the file names they stand for; CRLF (a file written on a
    # Windows host) ends a line like LF.
    text = read_file(path, label).decode("utf-8", "surrogateescape")
    lines = text.replace("\r\n", "\n").split("\n")
    patterns = (line for line in lines if line.strip() and not line.startswith(("#", ";")))
    return check_patterns(tuple(patterns), f"{label} file {path!r}")


def check_patterns(patterns: tuple[str, ...], origin: str) -> tuple[str, ...]:
    """The patterns, once each is known to compile; `origin` names where they came from."""
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
