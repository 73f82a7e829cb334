"""Configuration: dataclasses, parsing, validation and precedence (flag > env > file > default)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Backend(Enum):
    """How a batch of changes reaches the destination."""

    DIRECT = "direct"  # in-process file operations
    RSYNC = "rsync"  # one rsync process per batch


class DeleteMode(Enum):
    """lsyncd's `delete` setting: when files missing from the source are removed from the destination."""

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
    """Bad configuration: the message is one line naming the bad value and the fix (exit status 2)."""

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
