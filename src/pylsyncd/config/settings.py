"""Every setting, declared once; and PairConfig and Config, which they fill.

The argument parser and --help (`pylsyncd.cli`), the environment and flag layers (`__init__`),
the TOML file's keys (`file`), `pylsyncd check`'s listing, ENV_VARS and README's configuration
table (checked by tests/test_settings.py) all follow this table. A new setting is one `Setting`
below, the field of the same name in PairConfig or Config, its row in README, and the code that
uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pylsyncd.config.kinds import (
    ARGUMENTS,
    NUMERIC_ID,
    PATTERN_FILE,
    PATTERNS,
    REMOTE_PYTHON,
    SIZE,
    SSH_ARGUMENTS,
    SWITCH,
    absolute_file,
    choice,
    enum_values,
    seconds,
)
from pylsyncd.config.observability import (
    ADDRESS,
    COMMAND,
    Address,
    OnSyncBusy,
    parse_on_sync_busy,
)
from pylsyncd.config.remote import RemoteDestination
from pylsyncd.config.setting import Scope as Scope
from pylsyncd.config.setting import Setting as Setting
from pylsyncd.config.sync_mode import DEFAULT_STATE_DIR, parse_conflict, parse_mode, parse_state_dir
from pylsyncd.config.targets import DEFAULT_QUEUE_LIMIT, QUEUE_LIMIT, VERIFY_INTERVAL
from pylsyncd.config.types import LOG_LEVELS, Backend, DeleteMode, WatchMode
from pylsyncd.config.values import (
    parse_backend,
    parse_delay,
    parse_delete,
    parse_grace,
    parse_log_level,
    parse_poll_hot_for,
    parse_poll_interval,
    parse_poll_period,
    parse_poll_safety_period,
    parse_shutdown_grace,
    parse_status_file,
    parse_watch,
)
from pylsyncd.entries import ConflictPolicy, Mode

_PAIR, _DAEMON = Scope.PAIR, Scope.DAEMON

SETTINGS = (
    Setting(
        "sources", _PAIR, "SRC",
        "a directory to mirror, as an absolute path; SOURCES lists them ':'-separated and is "
        "needed only when no SRC DST arguments or [[pair]] tables give the pairs",
    ),
    Setting(
        "destinations", _PAIR, "DST",
        "where its source is mirrored, created when missing: a path, or [user@]host:/path or "
        "ssh://[user@]host[:port]/path over ssh; DESTINATIONS lists them ':'-separated, one "
        "per source, in the same order",
    ),
    Setting(
        "excludes", _PAIR, "--exclude",
        "rsync exclude pattern; repeat the flag for more, or separate them with ':' in the "
        "environment; a higher level replaces the patterns of the levels below",
        kind=PATTERNS, default=(),
    ),
    Setting(
        "exclude_from", _PAIR, "--exclude-from",
        "file of rsync exclude patterns, one per line, blank lines and lines starting with '#' "
        "or ';' ignored; added after the excludes; in the TOML file, relative to that file",
        kind=PATTERN_FILE, default=(), adds_to="excludes",
    ),
    Setting(
        "gitignore", _PAIR, "--gitignore",
        "also leave out what git ignores: the source tree's .gitignore files and "
        ".git/info/exclude, with git's rules, read again live when they change",
        kind=SWITCH, default=False,
    ),
    Setting(
        "delay", _PAIR, "--delay",
        "how long an event may wait to be batched with others; at most 3600",
        kind=seconds(parse_delay), default=0.02,
    ),
    Setting(
        "backend", _PAIR, "--backend",
        "how changes reach the destination: in-process file operations or one rsync per batch",
        kind=choice(parse_backend, enum_values(Backend)), default=Backend.DIRECT,
    ),
    Setting(
        "mode", _PAIR, "--mode",
        "which way changes flow: one-way mirrors the source; two-way syncs both ways, keeping "
        "what both sides last agreed on in STATE_DIR; one-way-safe mirrors the source but never "
        "deletes or overwrites what was made or changed in the destination",
        kind=choice(parse_mode, enum_values(Mode)), default=Mode.ONE_WAY,
    ),
    Setting(
        "conflict", _PAIR, "--conflict",
        "two-way and one-way-safe: who takes a path both sides changed; the other version is "
        "kept beside it on both sides as NAME.sync-conflict-DATE-TIME-SIDE.EXT",
        kind=choice(parse_conflict, enum_values(ConflictPolicy)), default=ConflictPolicy.NEWER,
    ),
    Setting(
        "state_dir", _PAIR, "--state-dir",
        "two-way and one-way-safe: the directory where each pair keeps its state, outside both "
        "roots; put it on a volume so a recreated container remembers it",
        kind=absolute_file(parse_state_dir), default=DEFAULT_STATE_DIR,
    ),
    Setting(
        "delete", _PAIR, "--delete",
        "remove from the destination what the source no longer has: always, never, only at "
        "the initial sync, only while running",
        kind=choice(parse_delete, enum_values(DeleteMode), toml_booleans=True),
        default=DeleteMode.TRUE,
    ),
    Setting(
        "init", _PAIR, "--init",
        "fully sync each pair at start",
        kind=SWITCH, default=True,
    ),
    Setting(
        "log_level", _DAEMON, "--log-level",
        "least severe message logged, on stderr",
        kind=choice(parse_log_level, LOG_LEVELS), default="info",
    ),
    Setting(
        "rsync_args", _PAIR, "--rsync-args",
        "extra rsync arguments, split like a shell does; write --rsync-args='-z --bwlimit=1M'; "
        "options that would delete the source, skip changes, show half-written files or break "
        "the batch (--remove-source-files, -n, --inplace, --delete*, --include...) are refused",
        kind=ARGUMENTS, default=(),
    ),
    Setting(
        "ssh_args", _PAIR, "--ssh-args",
        "extra ssh options for a remote destination's connection, split like a shell does; "
        "write --ssh-args='-i /keys/id -o UserKnownHostsFile=/keys/known_hosts'",
        kind=SSH_ARGUMENTS, default=(),
    ),
    Setting(
        "remote_python", _PAIR, "--remote-python",
        "the Python 3 (3.8 or later) on a remote destination's host that runs pylsyncd's agent "
        "for small changes, sent over the connection (nothing is installed there); off sends "
        "every batch with rsync",
        kind=REMOTE_PYTHON, default="python3",
    ),
    Setting(
        "in_place_size", _PAIR, "--in-place-size",
        "files at least this big (16M, 1G) that the destination already holds are updated in "
        "place by the blocks that changed, like rsync --inplace, where its filesystem cannot "
        "clone (and always with the rsync backend); smaller ones are rewritten whole and "
        "appear only complete",
        kind=SIZE, default=16 * 1024 * 1024,
    ),
    Setting(
        "allow_empty_source", _PAIR, "--allow-empty-source",
        "let an empty source empty a non-empty destination at start; otherwise the initial "
        "sync of an empty source deletes nothing and warns",
        kind=SWITCH, default=False,
    ),
    Setting(
        "shutdown_grace", _DAEMON, "--shutdown-grace",
        "on SIGTERM or SIGINT, how long pending changes may take to apply; at most 3600",
        kind=seconds(parse_shutdown_grace), default=10.0,
    ),
    Setting(
        "watch", _PAIR, "--watch",
        "how changes are noticed: auto picks inotify, plus rescans that learn whether the mount "
        "forwards changes made elsewhere on FUSE, NFS, SMB, 9p, vboxsf, virtiofs; hybrid is that "
        "pair anywhere; poll rescans only",
        kind=choice(parse_watch, enum_values(WatchMode)), default=WatchMode.AUTO,
    ),
    Setting(
        "poll_interval", _PAIR, "--poll-interval",
        "seconds between rescans of the hot set (poll, hybrid): the directories where a "
        "change was found in the last POLL_HOT_FOR seconds; at most 60",
        kind=seconds(parse_poll_interval), default=0.2,
    ),
    Setting(
        "poll_period", _PAIR, "--poll-period",
        "seconds for one pass of the rescans over every other directory (poll, hybrid), "
        "spread evenly; a change there is seen within this; at most 86400",
        kind=seconds(parse_poll_period), default=10.0,
    ),
    Setting(
        "poll_hot_for", _PAIR, "--poll-hot-for",
        "seconds a directory stays in the hot set after the last change found in it; at most 3600",
        kind=seconds(parse_poll_hot_for), default=60.0,
    ),
    Setting(
        "poll_safety_period", _PAIR, "--poll-safety-period",
        "seconds for one pass of the rescans over the whole tree once a hybrid learned that the "
        "mount forwards events (inotify reports its changes): a safety net; at most 86400",
        kind=seconds(parse_poll_safety_period), default=600.0,
    ),
    Setting(
        "status_file", _DAEMON, "--status-file",
        "JSON file where the daemon keeps each pair's state, read by `pylsyncd health` and "
        "`pylsyncd status`; the Docker image sets /run/pylsyncd/status.json",
        kind=absolute_file(parse_status_file),
    ),
    Setting(
        "puid", _DAEMON, "--puid",
        "owner of the files and directories written into destinations, so output copied back "
        "to a host mount belongs to the host user; needs root; unset, root keeps the source's "
        "owner and another user keeps its own",
        kind=NUMERIC_ID, metavar="UID",
    ),
    Setting(
        "pgid", _DAEMON, "--pgid",
        "group of the files and directories written into destinations; needs root unless it "
        "is one of the daemon's own groups",
        kind=NUMERIC_ID, metavar="GID",
    ),
    Setting(
        "metrics_addr", _DAEMON, "--metrics-addr",
        "serve Prometheus metrics on http://HOST:PORT/metrics; the image's usual value is "
        "0.0.0.0:9108",
        kind=ADDRESS,
    ),
    Setting(
        "on_sync", _PAIR, "--on-sync",
        "command run after each batch is applied (never before the initial sync is done), split "
        "like a shell does and run without one; the changed paths, NUL-separated, on its stdin",
        kind=COMMAND, default=(),
    ),
    Setting(
        "on_sync_paths", _PAIR, "--on-sync-paths",
        "rsync patterns: ON_SYNC runs only for batches that change a matching path; repeat the "
        "flag for more, or separate them with ':' in the environment; none: every batch",
        kind=PATTERNS, default=(),
    ),
    Setting(
        "on_sync_busy", _PAIR, "--on-sync-busy",
        "when a batch lands while ON_SYNC still runs: queue one more run, its paths merged, or "
        "restart it (TERM, then KILL after ON_SYNC_STOP_TIMEOUT)",
        kind=choice(parse_on_sync_busy, enum_values(OnSyncBusy)),
        default=OnSyncBusy.QUEUE,
    ),
    Setting(
        "on_sync_stop_timeout", _PAIR, "--on-sync-stop-timeout",
        "seconds ON_SYNC has to exit after TERM (restart, or the daemon stopping) before KILL",
        kind=seconds(parse_grace), default=5.0,
    ),
    Setting(
        "queue_limit", _PAIR, "--queue-limit",
        "changes a destination may fall behind its source (down, slow) before its queue is "
        "dropped and it catches up with a full comparison instead",
        kind=QUEUE_LIMIT, default=DEFAULT_QUEUE_LIMIT,
    ),
    Setting(
        "verify_interval", _PAIR, "--verify-interval",
        "one-way: compare the whole tree this often, for replicas other processes touch; "
        "unset: never, beyond the start and a replaced or emptied destination",
        kind=VERIFY_INTERVAL,
    ),
    Setting(
        "config", _DAEMON, "--config",
        "TOML file of settings and [[pair]] tables",
        metavar="FILE",
    ),
)  # fmt: skip

BY_NAME = {setting.name: setting for setting in SETTINGS}
LAYERED = tuple(setting for setting in SETTINGS if setting.layered)
PAIR_SETTINGS = tuple(setting for setting in LAYERED if setting.scope is Scope.PAIR)
DAEMON_SETTINGS = tuple(setting for setting in LAYERED if setting.scope is Scope.DAEMON)
# Every environment variable the daemon reads.
ENV_VARS = tuple(setting.env for setting in SETTINGS)
# The defaults, for the dataclasses below: a default is written once, in its declaration.
_DEFAULT: dict[str, Any] = {setting.name: setting.default for setting in LAYERED}


@dataclass(frozen=True)
class PairConfig:
    """One source -> destination mirror and the settings that apply to it."""

    source: str  # absolute, normalised path of an existing directory
    destination: str  # absolute, normalised path (created at start when missing), or `remote`
    excludes: tuple[str, ...] = _DEFAULT["excludes"]  # EXCLUDES then EXCLUDE_FROM's lines
    gitignore: bool = _DEFAULT["gitignore"]
    delay: float = _DEFAULT["delay"]
    backend: Backend = _DEFAULT["backend"]
    mode: Mode = _DEFAULT["mode"]
    conflict: ConflictPolicy = _DEFAULT["conflict"]
    state_dir: str = _DEFAULT["state_dir"]
    delete: DeleteMode = _DEFAULT["delete"]
    init: bool = _DEFAULT["init"]
    rsync_args: tuple[str, ...] = _DEFAULT["rsync_args"]
    ssh_args: tuple[str, ...] = _DEFAULT["ssh_args"]
    remote_python: str | None = _DEFAULT["remote_python"]  # None: no agent
    in_place_size: int = _DEFAULT["in_place_size"]
    allow_empty_source: bool = _DEFAULT["allow_empty_source"]
    watch: WatchMode = _DEFAULT["watch"]
    poll_interval: float = _DEFAULT["poll_interval"]
    poll_period: float = _DEFAULT["poll_period"]
    poll_hot_for: float = _DEFAULT["poll_hot_for"]
    poll_safety_period: float = _DEFAULT["poll_safety_period"]
    on_sync: tuple[str, ...] = _DEFAULT["on_sync"]  # the command's argument list; () for none
    on_sync_paths: tuple[str, ...] = _DEFAULT["on_sync_paths"]
    on_sync_busy: OnSyncBusy = _DEFAULT["on_sync_busy"]
    on_sync_stop_timeout: float = _DEFAULT["on_sync_stop_timeout"]
    queue_limit: int = _DEFAULT["queue_limit"]  # changes queued per destination, then dropped
    verify_interval: float | None = _DEFAULT["verify_interval"]  # None: no periodic comparison
    # The destination on another host, when it is one (`destination` is then its ssh:// form).
    remote: RemoteDestination | None = None


@dataclass(frozen=True)
class Config:
    """Everything the daemon needs: the pairs plus process-wide settings."""

    pairs: tuple[PairConfig, ...]
    log_level: str = _DEFAULT["log_level"]
    shutdown_grace: float = _DEFAULT["shutdown_grace"]
    status_file: str | None = _DEFAULT["status_file"]  # where `health` reads the JSON status
    puid: int | None = _DEFAULT["puid"]  # owner given to what the daemon creates in destinations
    pgid: int | None = _DEFAULT["pgid"]
    metrics_addr: Address | None = _DEFAULT["metrics_addr"]  # where /metrics is served, if at all
