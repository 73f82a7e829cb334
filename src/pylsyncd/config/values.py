"""Setting values given as text (flags, environment) and exclude files, parsed and checked."""

from __future__ import annotations

import math
import os
import re
import shlex
import threading
from collections.abc import Sequence

from pylsyncd.config.rsync_args import check_rsync_args
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


# Upper bounds: generous for a demanding user, low enough to refuse nonsense (DELAY=1e9 is 31
# years) and a unit mistake (milliseconds given as seconds) before the daemon waits on it.
# DELAY: past an hour a change is not "live" any more; a periodic copy is cron's job.
MAX_DELAY = 3600.0
# POLL_INTERVAL paces the hot set, the directories where something just changed; past a minute
# it is no faster than a cold pass, and a longer pace for the whole tree is POLL_PERIOD.
MAX_POLL_INTERVAL = 60.0
# POLL_PERIOD: a change in a quiet directory is seen within one pass; past a day it is not
# watching any more.
MAX_POLL_PERIOD = 86400.0
# POLL_HOT_FOR: a directory stays hot (rescanned every POLL_INTERVAL) this long after a change;
# past an hour nearly every directory of a working tree is hot, which is POLL_PERIOD's job.
MAX_POLL_HOT_FOR = 3600.0
# POLL_SAFETY_PERIOD: the net under a mount that forwards events; one pass a day still catches
# a lost event the same day.
MAX_POLL_SAFETY_PERIOD = 86400.0
# SHUTDOWN_GRACE: Docker's and Kubernetes' stop timeouts (10 s, 30 s) must exceed it; past an
# hour no orchestrator waits, so the changes would be lost to a KILL anyway.
MAX_SHUTDOWN_GRACE = 3600.0


def parse_poll_interval(given: str | float, label: str) -> float:
    """Seconds between rescans of the hot set, > 0 and at most MAX_POLL_INTERVAL."""
    return _parse_seconds(
        given,
        label,
        allow_zero=False,
        example="0.2",
        most=MAX_POLL_INTERVAL,
        longer="for rarer rescans of the whole tree, use POLL_PERIOD",
    )


def parse_poll_period(given: str | float, label: str) -> float:
    """Seconds for one pass over the cold directories, > 0 and at most MAX_POLL_PERIOD."""
    return _parse_seconds(given, label, allow_zero=False, example="10", most=MAX_POLL_PERIOD)


def parse_poll_hot_for(given: str | float, label: str) -> float:
    """Seconds a directory stays hot after a change, > 0 and at most MAX_POLL_HOT_FOR."""
    return _parse_seconds(given, label, allow_zero=False, example="60", most=MAX_POLL_HOT_FOR)


def parse_poll_safety_period(given: str | float, label: str) -> float:
    """Seconds for one safety-net pass over the tree, > 0 and at most MAX_POLL_SAFETY_PERIOD."""
    return _parse_seconds(
        given, label, allow_zero=False, example="600", most=MAX_POLL_SAFETY_PERIOD
    )


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


_SIZE = re.compile(r"(?P<number>\d+)\s*(?:(?P<unit>[kmgt])(?P<binary>i?)b?)?", re.IGNORECASE)
_SIZE_UNITS = {"k": 1, "m": 2, "g": 3, "t": 4}
# A size past an exabyte is a mistake, not a file.
_MAX_SIZE = 2**60


def parse_size(given: str | int, label: str) -> int:
    """A size in bytes: a whole number, optionally with K, M, G or T (powers of 1024, also
    written KiB...; KB, MB... are powers of 1000, as rsync reads them)."""
    text = str(given).strip()
    match = _SIZE.fullmatch(text)
    if match is None:
        raise _invalid(label, given, "give a size in bytes such as 16M, 64KiB or 1048576")
    size = int(match.group("number"))
    unit = match.group("unit")
    if unit is not None:
        decimal = not match.group("binary") and text[-1:].lower() == "b"
        size *= (1000 if decimal else 1024) ** _SIZE_UNITS[unit.lower()]
    if size > _MAX_SIZE:
        raise _invalid(label, given, "give a size of at most 1E (2**60 bytes)")
    return size


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


def _parse_seconds(
    given: str | float,
    label: str,
    *,
    allow_zero: bool,
    example: str,
    most: float = threading.TIMEOUT_MAX,
    longer: str = "",
) -> float:
    try:
        value = float(given)
    except ValueError:
        value = math.nan
    # nan and inf fail these comparisons too; past TIMEOUT_MAX a thread's wait() raises
    # OverflowError instead of waiting.
    if (value > 0 or (allow_zero and value == 0)) and value <= most:
        return value
    bound = ">= 0" if allow_zero else "> 0"
    if most < threading.TIMEOUT_MAX:
        bound += f" and at most {most:g}"
    hint = f" ({longer})" if longer and value > most else ""
    raise _invalid(label, given, f"give a number of seconds {bound}, e.g. {example}{hint}")


def parse_delay(given: str | float, label: str) -> float:
    """A delay in seconds, >= 0 and at most MAX_DELAY."""
    return _parse_seconds(given, label, allow_zero=True, example="0.02", most=MAX_DELAY)


def parse_grace(given: str | float, label: str) -> float:
    """A length of time in seconds, > 0 (`health --failing-for`)."""
    return _parse_seconds(given, label, allow_zero=False, example="10")


def parse_shutdown_grace(given: str | float, label: str) -> float:
    """A shutdown grace in seconds, > 0 and at most MAX_SHUTDOWN_GRACE."""
    return _parse_seconds(given, label, allow_zero=False, example="10", most=MAX_SHUTDOWN_GRACE)


def parse_rsync_args(text: str, label: str) -> tuple[str, ...]:
    """Extra rsync arguments, split as a shell would, none of them refused (see `rsync_args`)."""
    return check_rsync_args(_split_arguments(text, label), label)


def _split_arguments(text: str, label: str) -> tuple[str, ...]:
    """`text` split into arguments as a shell would split it (no shell runs)."""
    try:
        arguments = tuple(shlex.split(text))
    except ValueError as error:
        raise ConfigError(
            f"{label}={text!r} cannot be split into arguments ({error}): quote it as in a shell"
        ) from None
    return arguments


# ssh options the daemon sets itself for its one connection per target (see transfer/ssh_master):
# a master of the user's, a control socket elsewhere or a backgrounded ssh would escape it.
_OWN_SSH_FLAGS = ("-M", "-S", "-O", "-f", "-N", "-W", "-G", "-T", "-t")
_OWN_SSH_OPTIONS = ("controlmaster", "controlpath", "controlpersist")


def parse_ssh_args(text: str, label: str) -> tuple[str, ...]:
    """Extra ssh options, split as a shell would; those that would break the one master
    connection per target (-M, -S, -f, ControlPath=...) are refused."""
    return check_ssh_args(_split_arguments(text, label), label)


def parse_remote_python(text: str, label: str) -> str | None:
    """The remote's Python command for the agent: one word or path; `off` (or none): no agent."""
    word = text.strip()
    if word.lower() in ("off", "none", ""):
        return None
    if any(character.isspace() or character == "\0" for character in word):
        raise ConfigError(
            f"{label}={text!r} is not one command: give the remote's Python 3 as a name or a "
            "path (python3, /usr/bin/python3), or off"
        )
    return word


def check_ssh_args(arguments: tuple[str, ...], label: str) -> tuple[str, ...]:
    """The arguments, once none of them is one the daemon sets itself."""
    for index, argument in enumerate(arguments):
        option = argument
        if argument == "-o" and index + 1 < len(arguments):
            option = "-o" + arguments[index + 1]
        name = option[2:].split("=", 1)[0].split(None, 1)[0].lower() if option[2:] else ""
        if argument[:2] in _OWN_SSH_FLAGS or (option.startswith("-o") and name in _OWN_SSH_OPTIONS):
            raise ConfigError(
                f"{label} may not give {argument!r}: the daemon runs its own ssh master "
                "connection per target; remove it"
            )
    return arguments


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
