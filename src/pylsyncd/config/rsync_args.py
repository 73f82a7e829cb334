"""RSYNC_ARGS: the rsync options refused because they break the mirror or the batch protocol.

The `rsync` backend (`pylsyncd.transfer.rsync`) runs `rsync --archive --modify-window=-1 --stats
RSYNC_ARGS... [--chown] [--delete] --filter=- EXCLUDE... --ignore-times --from0 --include-from=-
--exclude=* -- SRC/ DST/` for a batch, and the same without the last four options for a full
sync: the batch's paths are NUL-separated include rules on stdin, the user's arguments come
before every option of the daemon's own, and the daemon reports success when rsync exits 0. An
option is refused when it would make that run delete or skip what the mirror must have, show a
half-written file, write outside the destination, or read its list of paths from elsewhere.
docs/rsync-args.md gives the reasons at length; each entry below gives them in one line.
"""

from __future__ import annotations

from pylsyncd.errors import ConfigError

_NOT_APPLIED = "nothing would be applied while the daemon reports success"
_DELETES = "deletion is DELETE's to decide (true, false, startup, running); set DELETE instead"
_FILTERS = (
    "a rule of yours comes before the batch's own and could include paths the batch leaves out; "
    "give what to leave out in EXCLUDES"
)
_HALF_WRITTEN = (
    "a half-written file would appear in the destination; pylsyncd replaces a file only "
    "when its copy is complete"
)
_BATCH_FILE = "a batch file records one rsync run; the daemon runs one per batch of changes"
_INTERNAL = "an option rsync uses between its own processes, not a transfer of SRC to DST"

# Long option name (without "--") -> why it is refused and what to do instead.
REFUSED: dict[str, str] = {
    "remove-source-files": "rsync would delete every source file it copies",
    "remove-sent-files": "rsync would delete every source file it copies",
    "dry-run": _NOT_APPLIED,
    "list-only": _NOT_APPLIED,
    "only-write-batch": _NOT_APPLIED,
    "version": _NOT_APPLIED + " (rsync prints its version and exits)",
    "help": _NOT_APPLIED + " (rsync prints its help and exits)",
    "no-recursive": _NOT_APPLIED + " (rsync skips every directory)",
    "no-r": _NOT_APPLIED + " (rsync skips every directory)",
    "existing": "new files would never reach the destination",
    "ignore-non-existing": "new files would never reach the destination",
    "ignore-existing": "a changed file would never reach the destination once it is there",
    "size-only": (
        "a rewrite that keeps the size would never reach the destination (it overrides the "
        "--ignore-times each batch relies on)"
    ),
    "compare-dest": "files equal to those in that directory would be missing from the mirror",
    "link-dest": (
        "the mirror's files would be hard links into that directory, so a change made there "
        "would appear in the mirror; use --copy-dest"
    ),
    "files-from": "the daemon gives rsync the batch's paths itself, on stdin",
    "include": _FILTERS,
    "include-from": _FILTERS,
    "filter": _FILTERS,
    # Its lines may be include rules too ("+ PATTERN"); EXCLUDE_FROM's are exclude patterns.
    "exclude-from": _FILTERS.replace("EXCLUDES", "EXCLUDE_FROM"),
    "relative": "files would land under their full source path inside the destination",
    "keep-dirlinks": (
        "rsync would follow a symlink in the destination and write outside the destination"
    ),
    "read-batch": "rsync would replay that file instead of mirroring the source",
    "write-batch": _BATCH_FILE + ": the file would hold the last batch only",
    "daemon": "rsync would run as a server instead of mirroring the source",
    "server": _INTERNAL,
    "sender": _INTERNAL,
    "delete": _DELETES,
    "del": _DELETES,
    "delete-before": _DELETES,
    "delete-during": _DELETES,
    "delete-delay": _DELETES,
    "delete-after": _DELETES,
    "delete-missing-args": _DELETES,
    "delete-excluded": (
        "it would delete the destination files that EXCLUDES protect (a mounted volume's own "
        "data, caches)"
    ),
    "inplace": _HALF_WRITTEN,
    "append": _HALF_WRITTEN,
    "append-verify": _HALF_WRITTEN,
    "partial": _HALF_WRITTEN + " (a stopped rsync keeps its partial copy under the real name)",
}
# Short options -> the long option they stand for ("P" is --partial --progress).
REFUSED_SHORT = {"n": "dry-run", "R": "relative", "K": "keep-dirlinks", "f": "filter"}
REFUSED_SHORT |= {"F": "filter", "P": "partial", "V": "version"}
# --info=help and --debug=help print a list and exit 0, like --help.
_HELP_VALUES = frozenset(("info", "debug"))


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# rsync's long options that take a value (`--name=VALUE` or `--name VALUE`), from
# `rsync --help` (3.5.0) and its hidden aliases; the others below take none. A test compares
# them with the installed rsync's --help.
TAKES_VALUE = _words(
    """info debug stderr backup-dir suffix confine-root chmod checksum-choice cc block-size rsh
    rsync-path max-delete max-size min-size max-alloc partial-dir usermap groupmap chown timeout
    contimeout modify-window temp-dir compare-dest copy-dest link-dest compress-choice zc
    compress-level zl compress-threads zt skip-compress filter exclude exclude-from include
    include-from files-from copy-as address port sockopts outbuf remote-option out-format
    log-format log-file log-file-format password-file early-input bwlimit stop-after time-limit
    stop-at write-batch only-write-batch read-batch protocol iconv checksum-seed config
    dparam"""
)
TAKES_NONE = _words(
    """verbose quiet no-motd checksum archive recursive inc-recursive i-r no-inc-recursive
    no-i-r relative no-implied-dirs backup update inplace append append-verify dirs old-dirs
    old-d mkpath links copy-links copy-unsafe-links safe-links insecure-links munge-links
    copy-dirlinks keep-dirlinks hard-links perms executability acls xattrs owner group devices
    copy-devices write-devices specials drop-D no-D times atimes open-noatime crtimes omit-dir-times
    omit-link-times super fake-super sparse preallocate dry-run whole-file no-whole-file no-W
    one-file-system existing ignore-non-existing ignore-existing remove-source-files
    remove-sent-files del delete delete-before delete-during delete-delay delete-after
    delete-excluded ignore-missing-args delete-missing-args ignore-errors force partial
    delay-updates prune-empty-dirs numeric-ids ignore-times size-only fuzzy compress
    cvs-exclude from0 old-args secluded-args protect-args trust-sender blocking-io stats
    8-bit-output human-readable progress itemize-changes list-only fsync ipv4 ipv6 version help
    no-recursive no-r no-dirs no-d no-relative no-R no-from0 no-partial no-inplace
    daemon server sender detach no-detach"""
)
KNOWN = TAKES_VALUE | TAKES_NONE
# Short options that take a value: the rest of the cluster, or the next argument.
_VALUED_SHORT = frozenset("eBTfM@")


def check_rsync_args(arguments: tuple[str, ...], label: str) -> tuple[str, ...]:
    """The arguments, once none of them is refused; ConfigError naming the first one that is."""
    waiting = ""  # the long option whose value the next argument is
    maybe_value = value_follows = False
    for argument in arguments:
        if value_follows or (maybe_value and not argument.startswith("-")):
            _check_value(f"--{waiting} {argument}", waiting, argument, label)
            waiting, maybe_value, value_follows = "", False, False
            continue
        maybe_value = value_follows = False
        if argument == "--" or not argument.startswith("-") or argument == "-":
            raise ConfigError(
                f"{label}: {argument!r} is not an option: rsync would take it (and what follows) "
                "as another source or destination; RSYNC_ARGS takes options only"
            )
        if argument.startswith("--"):
            name, equals, value = argument[2:].partition("=")
            _check_name(argument, name, label)
            if equals:
                _check_value(argument, name, value, label)
            else:
                waiting = name
                value_follows = name in TAKES_VALUE
                maybe_value = name not in KNOWN  # an option new to us: rsync decides
        else:
            value_follows = _check_short_cluster(argument, label)
    return arguments


def _check_name(argument: str, name: str, label: str) -> None:
    refused = _refused_name(name)
    if refused is not None:
        shown = f"--{refused}" if refused == name else f"an abbreviation of --{refused}"
        _refuse(argument, shown, REFUSED[refused], label)


def _check_value(argument: str, name: str, value: str, label: str) -> None:
    if name in _HELP_VALUES and "help" in value.lower().split(","):
        why = f"{_NOT_APPLIED} (rsync prints a list and exits)"
        _refuse(argument, f"--{name}=help", why, label)
    # rsync reads "+ PATTERN" given to --exclude as an include rule.
    if name == "exclude" and value.startswith("+"):
        _refuse(argument, "an include rule", _FILTERS, label)


def _refused_name(name: str) -> str | None:
    """The refused option `name` names: itself, or the one it abbreviates.

    rsync 3.5.0 (tried) refuses an abbreviation as an unknown option, but popt, its option parser,
    accepts an unambiguous prefix in some builds: a prefix of a refused name is refused too,
    unless it is itself the full name of another option (--exclude is not --exclude-from).
    """
    if name in KNOWN:
        return name if name in REFUSED else None
    if not name:
        return None
    return next((refused for refused in REFUSED if refused.startswith(name)), None)


def _check_short_cluster(argument: str, label: str) -> bool:
    """Whether the cluster's last option takes the next argument as its value."""
    letters = argument[1:]
    for index, letter in enumerate(letters):
        if letter in REFUSED_SHORT:
            refused = REFUSED_SHORT[letter]
            _refuse(argument, f"-{letter}, --{refused}", REFUSED[refused], label)
        if letter in _VALUED_SHORT:
            return index == len(letters) - 1  # else the rest of the cluster is its value
    return False


def _refuse(argument: str, option: str, why: str, label: str) -> None:
    named = "" if option == argument else f" ({option})"
    raise ConfigError(f"{label}: rsync option {argument!r}{named} is refused: {why}")
