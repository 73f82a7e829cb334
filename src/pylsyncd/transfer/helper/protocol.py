"""The messages between the pair's process and its helper process (JSON lines)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pylsyncd.coalesce import Change, ChangeKind


@dataclass
class Settings:
    """What the helper needs to build the same transfer as the pair's."""

    source: str
    destination: str
    excludes: list[str]
    delete: bool
    uid: int | None
    gid: int | None
    preserve: bool
    reported_unreadable: list[str]
    log_level: int
    in_place_size: int
    gitignore: bool = False  # what git ignores is left out too (it reads the ignore files itself)
    create_only: bool = False  # nothing the destination holds is replaced (`TransferState`)
    nice: int = 0  # added to the daemon's niceness by the pair's process as it starts it


@dataclass
class ChangedEntries:
    """Part of a live batch: files and symlinks an event named, each synced as `Replay` syncs
    a change (copied even when its size and mtime match). `key` names it in the report."""

    key: str
    paths: list[str]


@dataclass
class SubtreeReport:
    """What syncing one subtree (or one `ChangedEntries`, `path` then its key) did, sent back
    to the pair's process."""

    path: str
    entries: int = 0
    copied: int = 0
    bytes: int = 0
    dirs: int = 0
    links: int = 0
    deleted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, ChangeKind value)
    error: str | None = None
    unreadable: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)  # changed paths found gone (a batch's)

    def failed_changes(self) -> list[Change]:
        return [Change(path, ChangeKind(kind)) for path, kind in self.failed]
