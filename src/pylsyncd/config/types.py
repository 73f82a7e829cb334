"""The configuration's types, shared by the modules of this package that fill them.

Other code imports these from `pylsyncd.config`; they live here so that the parsing modules can
use them without importing the package's `__init__`, which imports those modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Backend(Enum):
    """How a batch of changes reaches the destination."""

    DIRECT = "direct"  # in-process file operations
    RSYNC = "rsync"  # one rsync process per batch


class WatchMode(Enum):
    """How a pair learns about changes in its source."""

    AUTO = "auto"  # inotify, or polling on filesystems that raise no inotify events
    INOTIFY = "inotify"
    POLL = "poll"  # periodic rescans only
    HYBRID = "hybrid"  # inotify for speed plus periodic rescans that catch what it never reported


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
    watch: WatchMode = WatchMode.AUTO
    poll_interval: float = 1.0


@dataclass(frozen=True)
class Config:
    """Everything the daemon needs: the pairs plus process-wide settings."""

    pairs: tuple[PairConfig, ...]
    log_level: str = "info"
    shutdown_grace: float = 10.0
    status_file: str | None = None  # where the daemon keeps its JSON status for `health`
    puid: int | None = None  # owner given to what the daemon creates in destinations
    pgid: int | None = None


LOG_LEVELS = ("debug", "info", "warning", "error")
# Per-pair settings that are PairConfig fields of the same name; excludes and exclude_from are
# joined into PairConfig.excludes.
PLAIN_SETTINGS = (
    "delay", "backend", "delete", "init", "rsync_args", "allow_empty_source", "watch",
    "poll_interval",
)  # fmt: skip
PAIR_SETTINGS = ("excludes", "exclude_from", *PLAIN_SETTINGS)
PROCESS_KEYS = ("log_level", "shutdown_grace", "status_file", "puid", "pgid")


@dataclass(frozen=True)
class Layer:
    """What one place (flags, env, a TOML table) sets, parsed; None where it says nothing."""

    excludes: tuple[str, ...] | None = None
    exclude_from: tuple[str, ...] | None = None  # the patterns read from the file
    delay: float | None = None
    backend: Backend | None = None
    delete: DeleteMode | None = None
    init: bool | None = None
    rsync_args: tuple[str, ...] | None = None
    allow_empty_source: bool | None = None
    watch: WatchMode | None = None
    poll_interval: float | None = None
    log_level: str | None = None
    shutdown_grace: float | None = None
    status_file: str | None = None
    puid: int | None = None
    pgid: int | None = None


@dataclass(frozen=True)
class PairSpec:
    """One pair as given, before its paths are checked; labels say where it came from."""

    source: str
    destination: str
    source_label: str
    destination_label: str
    layer: Layer = Layer()


@dataclass(frozen=True)
class ConfigFile:
    """What a config file gives: settings for every pair and the daemon, and its own pairs."""

    top: Layer = Layer()
    pairs: tuple[PairSpec, ...] = ()
