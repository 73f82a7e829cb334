"""Command line: argv and environment -> Config, then the daemon or `check`; exit statuses."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from pylsyncd import LOG_FORMAT
from pylsyncd.config import Config, ConfigError, load_config
from pylsyncd.config.kinds import FlagForm
from pylsyncd.config.settings import (
    BY_NAME,
    DAEMON_SETTINGS,
    LAYERED,
    PAIR_SETTINGS,
    SETTINGS,
    Setting,
)
from pylsyncd.config.values import parse_grace
from pylsyncd.errors import PylsyncdError

_USAGE = "pylsyncd [check] [options] [SRC DST [SRC DST ...]] | pylsyncd health|status [options]"
_DESCRIPTION = """\
Mirror each SRC directory into its DST and keep it mirrored: inotify events are batched for a few
milliseconds and applied in-process (direct) or with rsync.

  pylsyncd [options] [SRC DST ...]        run the daemon until SIGTERM or SIGINT
  pylsyncd check [options] [SRC DST ...]  check the configuration, print each pair and setting
  pylsyncd health [--failing-for SECONDS]  exit 0 if the running daemon is healthy (STATUS_FILE)
  pylsyncd status [--watch]               print the running daemon's state per pair (live)"""
# Paragraphs of --help's epilog, filled to 100 columns; {keys} and {daemon} are TOML keys.
_EPILOG = (
    "Each setting is a flag, an environment variable (named in its help) or a key in the TOML "
    "file given by --config / CONFIG: top-level keys with the same names in lower case ({keys}) "
    "and [[pair]] tables with source, destination and any per-pair setting; the daemon-wide "
    "settings ({daemon}) are refused inside [[pair]].",
    "For each pair the first that gives a setting wins: flag, environment, the pair's [[pair]] "
    "table, the file's top level, the default. A setting given there replaces (does not extend) "
    "the ones below it: a higher level's excludes replace those below, while EXCLUDE_FROM's "
    "patterns are added after the excludes. An empty environment variable counts as unset. "
    "Booleans in the environment: true/false, yes/no, on/off, 1/0. SOURCES and DESTINATIONS "
    "are needed only when no SRC DST arguments or [[pair]] tables are given.",
    "Exit status: 0 after a clean stop, 1 after a fatal error, 2 for bad configuration.",
)


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
        # No default: the parsed arguments hold settings only (they go to load_config).
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        import pylsyncd

        print(f"pylsyncd {pylsyncd.__version__}")
        parser.exit()


def build_parser(prog: str = "pylsyncd") -> argparse.ArgumentParser:
    """The argument parser; its --help documents every setting and its environment variable.

    Each setting's value lands under the setting's name, the SRC DST arguments under "paths":
    `vars()` of the parsed arguments is what load_config takes as flags.
    """
    keys = {
        "keys": ", ".join(setting.name for setting in LAYERED),
        "daemon": ", ".join(setting.name for setting in DAEMON_SETTINGS),
    }
    parser = _Parser(
        prog=prog,
        usage=_USAGE,
        description=_DESCRIPTION,
        epilog="\n\n".join(
            textwrap.fill(text.format(**keys), 100, break_on_hyphens=False) for text in _EPILOG
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    positional = [setting for setting in SETTINGS if setting.form is FlagForm.POSITIONAL]
    parser.add_argument(
        "paths",
        nargs="*",
        metavar=" ".join(setting.flag for setting in positional),
        help="the directories to mirror, in pairs; they replace SOURCES and DESTINATIONS and "
        "the file's pairs. "
        + " ".join(f"{setting.flag}: {setting.help}." for setting in positional),
    )
    for setting in SETTINGS:
        if setting.form is not FlagForm.POSITIONAL:
            parser.add_argument(setting.flag, dest=setting.name, **_argument(setting))
    parser.add_argument("--version", action=_PrintVersion, help="print the version and exit")
    return parser


def _argument(setting: Setting) -> dict[str, Any]:
    """add_argument's options for one setting's flag."""
    help_text = f"{setting.help} (env {setting.env}; default {setting.default_text})"
    options: dict[str, Any] = {"help": help_text}
    if setting.form is FlagForm.SWITCH:
        options["action"] = argparse.BooleanOptionalAction
    else:
        options["metavar"] = setting.placeholder
    if setting.form is FlagForm.REPEATED:
        options["action"] = "append"
    return options


def resolve(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[str, Config]:
    """The command ("run" or "check") and the checked Config; raises ConfigError.

    --help and --version print and raise SystemExit(0), as argparse does.
    """
    command, arguments = ("check", argv[1:]) if list(argv[:1]) == ["check"] else ("run", argv)
    parser = build_parser("pylsyncd check" if command == "check" else "pylsyncd")
    # Intermixed, so options may come between or after the SRC DST pairs.
    options = parser.parse_intermixed_args(list(arguments))
    return command, load_config(vars(options), environ)


def status_command(command: str, argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """`pylsyncd health` or `pylsyncd status`: read the running daemon's status file."""
    from pylsyncd.status import DEFAULT_FAILING_FOR, report

    parser = _Parser(
        prog=f"pylsyncd {command}",
        description="Exit 0 when every pair of the running daemon finished its initial sync and "
        "none has been failing or lagging for longer than --failing-for seconds, else 1 with "
        "the reason."
        + (" Before that verdict, print each pair's state." if command == "status" else ""),
    )
    status_file = BY_NAME["status_file"]  # read as the daemon reads it
    parser.add_argument(
        status_file.flag,
        dest=status_file.name,
        metavar=status_file.placeholder,
        help=f"the status file the daemon was given (env {status_file.env})",
    )
    parser.add_argument(
        "--failing-for",
        metavar="SECONDS",
        help=f"how long a pair may fail, or its oldest change wait, before it counts as unhealthy "
        f"(default {DEFAULT_FAILING_FOR:g})",
    )
    if command == "status":
        parser.add_argument(
            "--watch",
            action="store_true",
            help="refresh about once a second until Ctrl-C: a live view on a terminal, "
            "one line per pair and refresh otherwise",
        )
    options = parser.parse_args(list(argv))
    if options.status_file is not None:
        path = status_file.from_flag(options.status_file)
    elif environ.get(status_file.env):
        path = status_file.from_text(environ[status_file.env], status_file.env)
    else:
        raise ConfigError(
            f"pylsyncd {command} reads the daemon's status file: give {status_file.flag} "
            f"{status_file.placeholder} or set {status_file.env} to the path the daemon was given"
        )
    failing_for = (
        DEFAULT_FAILING_FOR
        if options.failing_for is None
        else parse_grace(options.failing_for, "--failing-for")
    )
    if getattr(options, "watch", False):
        from pylsyncd.status_view import watch

        return watch(path, failing_for=failing_for, out=sys.stdout, tty=sys.stdout.isatty())
    status, text = report(path, failing_for=failing_for, details=command == "status")
    print(text)
    return status


def describe(config: Config) -> str:
    """What `check` prints: one block per pair with every setting, then the daemon's settings."""
    # exclude_from has no field of its own: its patterns are listed with the excludes.
    per_pair = [setting for setting in PAIR_SETTINGS if not setting.adds_to]
    width = max(len(setting.name) for setting in (*per_pair, *DAEMON_SETTINGS)) + 2

    def lines(settings: Sequence[Setting], values: object) -> str:
        return "".join(
            f"  {setting.name + ':':<{width}}{setting.shown(getattr(values, setting.name))}\n"
            for setting in settings
        )

    blocks = [
        f"pair {number}: {pair.source} -> {pair.destination}\n{lines(per_pair, pair)}"
        for number, pair in enumerate(config.pairs, 1)
    ]
    blocks.append(f"daemon:\n{lines(DAEMON_SETTINGS, config)}")
    return "\n".join(blocks) + f"\nconfiguration OK: {len(config.pairs)} pair(s)"


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
