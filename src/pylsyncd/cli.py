"""Command line: argv and environment -> Config, then the daemon or `check`; exit statuses."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from pylsyncd import LOG_FORMAT
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
from pylsyncd.config.values import parse_grace, parse_status_file
from pylsyncd.errors import PylsyncdError

_USAGE = "pylsyncd [check] [options] [SRC DST [SRC DST ...]] | pylsyncd health|status [options]"
_DESCRIPTION = """\
Mirror each SRC directory into its DST and keep it mirrored: inotify events are batched for a few
milliseconds and applied in-process (direct) or with rsync.

  pylsyncd [options] [SRC DST ...]        run the daemon until SIGTERM or SIGINT
  pylsyncd check [options] [SRC DST ...]  check the configuration, print each pair and setting
  pylsyncd health [--failing-for SECONDS]  exit 0 if the running daemon is healthy (STATUS_FILE)
  pylsyncd status                         print the running daemon's state per pair"""
_EPILOG = """\
Each setting is a flag, an environment variable (named in its help) or a key in the TOML file
given by --config / CONFIG: top-level keys with the same names in lower case (delay, backend,
delete, init, log_level, rsync_args, excludes, exclude_from, allow_empty_source, shutdown_grace,
watch, poll_interval, status_file, puid, pgid)
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


class _PrintVersion(argparse.Action):
    """--version, looked up only when asked for (see pylsyncd.__getattr__)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        import pylsyncd

        print(f"pylsyncd {pylsyncd.__version__}")
        parser.exit()


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
    add(
        "--status-file",
        metavar="PATH",
        help="JSON file where the daemon keeps each pair's state, read by `pylsyncd health` and "
        "`pylsyncd status` (env STATUS_FILE; default none, the Docker image sets "
        "/run/pylsyncd/status.json)",
    )
    add(
        "--puid",
        metavar="UID",
        help="owner of the files and directories written into destinations, so output copied "
        "back to a host mount belongs to the host user; needs root (env PUID; default: the "
        "source's owner when root, else the daemon's user)",
    )
    add(
        "--pgid",
        metavar="GID",
        help="group of the files and directories written into destinations (env PGID)",
    )
    add("--config", metavar="FILE", help="TOML file of settings and [[pair]] tables (env CONFIG)")
    add("--version", action=_PrintVersion, help="print the version and exit")
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
        status_file=options.status_file,
        puid=options.puid,
        pgid=options.pgid,
    )
    return command, load_config(flags, environ)


def status_command(command: str, argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """`pylsyncd health` or `pylsyncd status`: read the running daemon's status file."""
    from pylsyncd.status import DEFAULT_FAILING_FOR, report

    parser = _Parser(
        prog=f"pylsyncd {command}",
        description="Exit 0 when every pair of the running daemon finished its initial sync and "
        "none has been failing for longer than --failing-for seconds, else 1 with the reason."
        + (" Before that verdict, print each pair's state." if command == "status" else ""),
    )
    parser.add_argument(
        "--status-file",
        metavar="PATH",
        help="the status file the daemon was given (env STATUS_FILE)",
    )
    parser.add_argument(
        "--failing-for",
        metavar="SECONDS",
        help=f"how long a pair may fail before it counts as unhealthy "
        f"(default {DEFAULT_FAILING_FOR:g})",
    )
    options = parser.parse_args(list(argv))
    if options.status_file is not None:
        path = parse_status_file(options.status_file, "--status-file")
    elif environ.get("STATUS_FILE"):
        path = parse_status_file(environ["STATUS_FILE"], "STATUS_FILE")
    else:
        raise ConfigError(
            f"pylsyncd {command} reads the daemon's status file: give --status-file PATH or set "
            "STATUS_FILE to the path the daemon was given"
        )
    failing_for = (
        DEFAULT_FAILING_FOR
        if options.failing_for is None
        else parse_grace(options.failing_for, "--failing-for")
    )
    status, text = report(path, failing_for=failing_for, details=command == "status")
    print(text)
    return status


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
        f"  status_file:        {config.status_file or 'none'}\n"
        f"  puid:pgid:          {_owner(config)}\n"
    )
    return "\n".join(blocks) + f"\nconfiguration OK: {len(config.pairs)} pair(s)"


def _owner(config: Config) -> str:
    if config.puid is None and config.pgid is None:
        return "unchanged"
    return (
        f"{'' if config.puid is None else config.puid}:{'' if config.pgid is None else config.pgid}"
    )


def _configure_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, format=LOG_FORMAT)
    logging.getLogger("pylsyncd").setLevel(level.upper())


def main(argv: list[str] | None = None) -> int:
    """Entry point of `pylsyncd` and `python -m pylsyncd`; returns the exit status."""
    arguments = sys.argv[1:] if argv is None else argv
    try:
        if arguments[:1] in (["health"], ["status"]):
            return status_command(arguments[0], arguments[1:], os.environ)
        command, config = resolve(arguments, os.environ)
        _configure_logging(config.log_level)
        if command == "check":
            print(describe(config))
            return 0
        # Imported here: the supervisor pulls in the watchers and transfers, which `check` and
        # a configuration error do not need.
        from pylsyncd import supervisor

        return supervisor.run(config)
    except PylsyncdError as error:
        message = " ".join(str(error).splitlines())  # one line, whatever the message held
        print(f"pylsyncd: error: {message}", file=sys.stderr)
        return error.exit_code
