"""The configuration's value types, shared by the modules of this package that fill them.

Other code imports these from `pylsyncd.config`; they live here so that the parsing modules can
use them without importing the package's `__init__`, which imports those modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeAlias


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


LOG_LEVELS = ("debug", "info", "warning", "error")

# What one place (flags, env, a TOML table) sets, parsed: a setting's name -> its value. A setting
# the place says nothing about is absent. The names are those of `settings.SETTINGS`.
Layer: TypeAlias = Mapping[str, Any]


@dataclass(frozen=True)
class PairSpec:
    """One pair as given, before its paths are checked; labels say where it came from."""

    source: str
    destination: str
    source_label: str
    destination_label: str
    layer: Layer = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigFile:
    """What a config file gives: settings for every pair and the daemon, and its own pairs."""

    top: Layer = field(default_factory=dict)
    pairs: tuple[PairSpec, ...] = ()
