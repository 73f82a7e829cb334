"""Command line: argv and environment -> Config, then the daemon or `check`; exit statuses."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from pylsyncd import __version__
from pylsyncd.config import (
    LOG_LEVELS,
    Backend,
    Config,
    ConfigError,
    DeleteMode,
    Flags,
    WatchMode,
    load_config,
)

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"

_USAGE = "pylsyncd [check] [options] [SRC DST [SRC DST ...]]"
_DESCRIPTION = """\
Mirror each SRC directory into its DST and keep it mirrored: inotify events are batched for a few
milliseconds and applied in-process (direct) or with rsync.

  pylsyncd [options] [SRC DST ...]        run the daemon until SIGTERM or SIGINT
  pylsyncd check [options] [SRC DST ...]  check the configuration, print each pair and setting"""
_EPILOG = """\
Each setting is a flag, an environment variable (named in its help) or a key in the TOML file
given by --config / CONFIG: top-level keys with the same names in lower case (delay, backend,
delete, init, log_level, rsync_args, excludes, exclude_from, allow_empty_source, shutdown_grace,
watch, poll_interval)
and [[pair]] tables with source, destination and any per-pair setting. The first that gives a
setting wins: flag, environment, the pair's table, the file's top level, the default; a setting
given there replaces (does not extend) the ones below it. An empty environment variable counts as
unset. Booleans in the environment: true/false, yes/no, on/off, 1/0.

Exit status: 0 after a clean stop, 1 after a fatal error, 2 for bad configuration."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Usage errors go out like every configuration error: one line, exit 2, no usage dump.
        if "expected one argument" in message:
            # argparse takes "--rsync-args -z" for two options; "--rsync-args=-z" is one.
            message += ", or write --option=VALUE for a value that starts with '-'"
        raise ConfigError(f"{message} (see pylsyncd --help)")


def build_parser(prog: str = "pylsyncd") -> argparse.ArgumentParser:
    """The argument parser; its --help documents every setting and its environment variable."""
    parser = _Parser(
        prog=prog,
        usage=_USAGE,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "paths",
        nargs="*",
        metavar="SRC DST",
        help="directories to mirror, as pairs of absolute paths; replace SOURCES and DESTINATIONS "
        "(env, ':'-separated, one destination per source, same order) and the file's pairs",
    )
    add(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="rsync exclude pattern, repeat for more; replaces EXCLUDES (env, ':'-separated) "
        "and the file's excludes (default: none)",
    )
    add(
        "--exclude-from",
        metavar="FILE",
        help="file of rsync exclude patterns, one per line, blank lines and lines starting with "
        "'#' or ';' ignored; added after the excludes (env EXCLUDE_FROM)",
    )
    add(
        "--delay",
        metavar="SECONDS",
        help="how long an event may wait to be batched with others (env DELAY; default 0.02)",
    )
    add(
        "--backend",
        metavar="{" + ",".join(backend.value for backend in Backend) + "}",
        help="how changes reach the destination: in-process file operations or one rsync per "
        "batch (env BACKEND; default direct)",
    )
    add(
        "--delete",
        metavar="{" + ",".join(mode.value for mode in DeleteMode) + "}",
        help="remove from the destination what the source no longer has: always, never, only at "
        "the initial sync, only while running (env DELETE; default true)",
    )
    add(
        "--init",
        action=argparse.BooleanOptionalAction,
        help="fully sync each pair at start (env INIT; default true)",
    )
    add(
        "--log-level",
        metavar="{" + ",".join(LOG_LEVELS) + "}",
        help="least severe message logged, on stderr (env LOG_LEVEL; default info)",
    )
    add(
        "--rsync-args",
        metavar="STRING",
        help="extra rsync arguments, split like a shell does; write --rsync-args='-z --bwlimit=1M' "
        "(env RSYNC_ARGS; default none)",
    )
    add(
        "--allow-empty-source",
        action=argparse.BooleanOptionalAction,
        help="let an empty source empty a non-empty destination at start; otherwise the initial "
        "sync of an empty source deletes nothing and warns (env ALLOW_EMPTY_SOURCE; default false)",
    )
    add(
        "--shutdown-grace",
        metavar="SECONDS",
        help="on SIGTERM or SIGINT, how long pending changes may take to apply "
        "(env SHUTDOWN_GRACE; default 10)",
    )
    add(
        "--watch",
        metavar="{" + ",".join(mode.value for mode in WatchMode) + "}",
        help="how changes are noticed: auto picks inotify, or polling on filesystems that raise no "
        "inotify events (FUSE, NFS, SMB, 9p, vboxsf, virtiofs); hybrid adds periodic rescans to "
        "inotify (env WATCH; default auto)",
    )
    add(
        "--poll-interval",
        metavar="SECONDS",
        help="seconds between rescans with poll or hybrid, growing while nothing changes "
        "(env POLL_INTERVAL; default 1)",
    )
    add("--config", metavar="FILE", help="TOML file of settings and [[pair]] tables (env CONFIG)")
    add("--version", action="version", version=f"pylsyncd {__version__}")
    return parser


def resolve(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[str, Config]:
    """The command ("run" or "check") and the checked Config; raises ConfigError.

    --help and --version print and raise SystemExit(0), as argparse does.
    """
    command, arguments = ("check", argv[1:]) if list(argv[:1]) == ["check"] else ("run", argv)
    parser = build_parser("pylsyncd check" if command == "check" else "pylsyncd")
    # Intermixed, so options may come between or after the SRC DST pairs.
    options = parser.parse_intermixed_args(list(arguments))
    flags = Flags(
        paths=tuple(options.paths),
        config=options.config,
        excludes=None if options.exclude is None else tuple(options.exclude),
        exclude_from=options.exclude_from,
        delay=options.delay,
        backend=options.backend,
        delete=options.delete,
        init=options.init,
        log_level=options.log_level,
        rsync_args=options.rsync_args,
        allow_empty_source=options.allow_empty_source,
        shutdown_grace=options.shutdown_grace,
        watch=options.watch,
        poll_interval=options.poll_interval,
    )
    return command, load_config(flags, environ)


def describe(config: Config) -> str:
    """What `check` prints: one block per pair with every setting, then the daemon's settings."""

    def words(values: Sequence[str]) -> str:
        return shlex.join(values) if values else "none"

    def yes_no(value: bool) -> str:
        return "true" if value else "false"

    blocks = [
        f"pair {number}: {pair.source} -> {pair.destination}\n"
        f"  excludes:           {words(pair.excludes)}\n"
        f"  delay:              {pair.delay:g} s\n"
        f"  backend:            {pair.backend.value}\n"
        f"  delete:             {pair.delete.value}\n"
        f"  init:               {yes_no(pair.init)}\n"
        f"  rsync_args:         {words(pair.rsync_args)}\n"
        f"  allow_empty_source: {yes_no(pair.allow_empty_source)}\n"
        f"  watch:              {pair.watch.value}\n"
        f"  poll_interval:      {pair.poll_interval:g} s\n"
        for number, pair in enumerate(config.pairs, 1)
    ]
    blocks.append(
        f"daemon:\n"
        f"  log_level:          {config.log_level}\n"
        f"  shutdown_grace:     {config.shutdown_grace:g} s\n"
    )
    return "\n".join(blocks) + f"\nconfiguration OK: {len(config.pairs)} pair(s)"


def _configure_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, format=LOG_FORMAT)
    logging.getLogger("pylsyncd").setLevel(level.upper())


def main(argv: list[str] | None = None) -> int:
    """Entry point of `pylsyncd` and `python -m pylsyncd`; returns the exit status."""
    try:
        command, config = resolve(sys.argv[1:] if argv is None else argv, os.environ)
        _configure_logging(config.log_level)
        if command == "check":
            print(describe(config))
            return 0
        # Imported here: the supervisor pulls in the watchers and transfers, which `check` and
        # a configuration error do not need.
        from pylsyncd import supervisor

        return supervisor.run(config)
    except ConfigError as error:
        message = " ".join(str(error).splitlines())  # one line, whatever the message held
        print(f"pylsyncd: error: {message}", file=sys.stderr)
        return error.exit_code
