"""Settings that would be nonsense are refused: upper bounds on times, dangerous rsync options.

Each refusal is checked on every layer (environment, flag, TOML file) and, through the real
command line, as exit status 2 with one line and nothing on disk.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import run_cli
from pylsyncd.config import Config, ConfigError, load_config
from pylsyncd.config import rsync_args as rsync_options
from pylsyncd.config.rsync_args import REFUSED, REFUSED_SHORT

# Setting -> the largest value it takes; one past it is refused.
BOUNDS = {
    "delay": 3600.0,
    "poll_interval": 60.0,
    "poll_period": 86400.0,
    "poll_hot_for": 3600.0,
    "poll_safety_period": 86400.0,
    "shutdown_grace": 3600.0,
}


@pytest.fixture
def pair(tmp_path: Path) -> dict[str, str]:
    source = tmp_path / "src"
    source.mkdir()
    return {"SOURCES": str(source), "DESTINATIONS": str(tmp_path / "dst")}


def value_of(name: str, config: Config) -> object:
    """The setting's value: a pair's field, or the daemon's."""
    pair = config.pairs[0]
    return getattr(pair, name) if hasattr(pair, name) else getattr(config, name)


def env_error(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config({}, environ)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- upper bounds ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BOUNDS)
def test_the_bound_itself_is_taken(pair: dict[str, str], name: str) -> None:
    config = load_config({}, {**pair, name.upper(): f"{BOUNDS[name]:g}"})
    assert value_of(name, config) == BOUNDS[name]


@pytest.mark.parametrize("given", ["1e9", "inf", "nan", "NEXT"])
@pytest.mark.parametrize("name", BOUNDS)
def test_past_the_bound_is_refused_from_the_environment(
    pair: dict[str, str], name: str, given: str
) -> None:
    bound = BOUNDS[name]
    text = repr(math.nextafter(bound, math.inf)) if given == "NEXT" else given
    message = env_error({**pair, name.upper(): text})
    assert message.startswith(f"{name.upper()}={text!r} is not valid: give a number of seconds")
    assert f"at most {bound:g}" in message


@pytest.mark.parametrize("name", BOUNDS)
def test_past_the_bound_is_refused_as_a_flag(pair: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({name: "1e9"}, pair)
    flag = "--" + name.replace("_", "-")
    assert str(caught.value).startswith(f"{flag}='1e9' is not valid")


@pytest.mark.parametrize("name", BOUNDS)
def test_past_the_bound_is_refused_in_the_file(
    tmp_path: Path, pair: dict[str, str], name: str
) -> None:
    path = tmp_path / "pylsyncd.toml"
    path.write_text(f"{name} = 1e9\n")
    message = env_error({**pair, "CONFIG": str(path)})
    assert f"{name}=1000000000.0 is not valid" in message
    assert f"at most {BOUNDS[name]:g}" in message


def test_a_long_poll_interval_points_to_poll_period(pair: dict[str, str]) -> None:
    assert "use POLL_PERIOD" in env_error({**pair, "POLL_INTERVAL": "300"})


def test_health_failing_for_keeps_no_bound_of_shutdown_grace(tmp_path: Path) -> None:
    # `health --failing-for` shares the seconds parser; a day is a fair threshold there.
    status = tmp_path / "status.json"
    result = run_cli("health", "--status-file", str(status), "--failing-for", "86400", cwd=tmp_path)
    assert "--failing-for" not in result.stderr


# --- RSYNC_ARGS --------------------------------------------------------------------------------


def refused_args(text: str) -> str:
    """The one-line refusal of RSYNC_ARGS=`text`, with no pair needed to reach it."""
    with pytest.raises(ConfigError) as caught:
        load_config({}, {"RSYNC_ARGS": text})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("RSYNC_ARGS: ")
    return message


# Every refused option, written out here rather than read from the module, so that an option
# dropped from the refused list fails its own test.
REFUSED_LONG = [
    "remove-source-files",
    "remove-sent-files",
    "dry-run",
    "list-only",
    "only-write-batch",
    "version",
    "help",
    "no-recursive",
    "no-r",
    "existing",
    "ignore-non-existing",
    "ignore-existing",
    "size-only",
    "compare-dest",
    "link-dest",
    "files-from",
    "include",
    "include-from",
    "filter",
    "exclude-from",
    "relative",
    "keep-dirlinks",
    "read-batch",
    "write-batch",
    "daemon",
    "server",
    "sender",
    "delete",
    "del",
    "delete-before",
    "delete-during",
    "delete-delay",
    "delete-after",
    "delete-missing-args",
    "delete-excluded",
    "inplace",
    "append",
    "append-verify",
    "partial",
]
REFUSED_LETTERS = {"n": "dry-run", "R": "relative", "K": "keep-dirlinks", "f": "filter"}
REFUSED_LETTERS |= {"F": "filter", "P": "partial", "V": "version"}
# Abbreviations popt may resolve to a refused option; none is the full name of another option.
ABBREVIATIONS = {
    "--remove-sou": "remove-source-files",
    "--dry": "dry-run",
    "--list-o": "list-only",
    "--only-write": "only-write-batch",
    "--ignore-ex": "ignore-existing",
    "--size-o": "size-only",
    "--compare": "compare-dest",
    "--files-f": "files-from",
    "--filt": "filter",
    "--exclude-f": "exclude-from",
    "--relat": "relative",
    "--keep-dir": "keep-dirlinks",
    "--read-b": "read-batch",
    "--delete-ex": "delete-excluded",
    "--delete-af": "delete-after",
    "--inpl": "inplace",
    "--append-v": "append-verify",
    "--parti": "partial",
    "--remove-sen": "remove-sent-files",
    "--no-rec": "no-recursive",
}


def test_the_refused_list_is_the_one_documented() -> None:
    assert sorted(REFUSED) == sorted(REFUSED_LONG)
    assert REFUSED_SHORT == REFUSED_LETTERS
    documented = (Path(__file__).resolve().parent.parent / "docs" / "rsync-args.md").read_text()
    for name in REFUSED_LONG:
        assert f"`--{name}`" in documented, name


LONG_CASES = [(name, form) for name in REFUSED_LONG for form in (f"--{name}", f"--{name}=x")]


@pytest.mark.parametrize(("name", "form"), LONG_CASES, ids=[form for _, form in LONG_CASES])
def test_each_refused_long_option(name: str, form: str) -> None:
    message = refused_args(f"-a {form} -z")
    assert f"rsync option {form!r}" in message
    assert message.endswith(f" is refused: {REFUSED[name]}")


@pytest.mark.parametrize(("form", "name"), ABBREVIATIONS.items(), ids=list(ABBREVIATIONS))
def test_each_abbreviation_of_a_refused_option(form: str, name: str) -> None:
    for written in (form, f"{form}=x"):
        message = refused_args(f"-a {written}")
        assert f"rsync option {written!r} (an abbreviation of --{name}) is refused" in message


@pytest.mark.parametrize("letter", REFUSED_LETTERS)
def test_each_refused_short_option_alone_and_in_a_cluster(letter: str) -> None:
    for form in (f"-{letter}", f"-av{letter}", f"-{letter}v"):
        message = refused_args(form)
        assert f"rsync option {form!r} (-{letter}, --{REFUSED_LETTERS[letter]})" in message


def test_a_value_is_not_read_as_an_option(pair: dict[str, str]) -> None:
    # -e takes the next argument, --rsh its own: their -n is ssh's, not rsync's --dry-run.
    args = "-e 'ssh -n' --rsh='ssh -n' -essh --log-file /tmp/x.log --bwlimit 1M --exclude=.git"
    assert load_config({}, {**pair, "RSYNC_ARGS": args}).pairs[0].rsync_args[1] == "ssh -n"


ACCEPTED = [
    "-z --bwlimit=1M",
    "-avz --exclude .git --exclude=*.tmp",
    "--partial-dir=.rsync-partial --copy-dest=/cache --no-inplace",
    "--info=progress2 --log-file=/tmp/rsync.log -0 --checksum",
    "--exclude=cache/ --delay-updates --one-file-system",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_useful_options_stay_accepted(pair: dict[str, str], text: str) -> None:
    assert load_config({}, {**pair, "RSYNC_ARGS": text}).pairs[0].rsync_args


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("--exclude '+ *'", "'--exclude + *' (an include rule)"),
        ("--exclude=+*.c", "'--exclude=+*.c' (an include rule)"),
        ("--info=progress2,help", "(--info=help)"),
        ("--debug HELP", "(--debug=help)"),
        ("-z /etc", "'/etc' is not an option"),
        ("-z -- /etc", "'--' is not an option"),
    ],
)
def test_values_and_arguments_that_are_refused(text: str, expected: str) -> None:
    assert expected in refused_args(text)


def test_refused_from_the_flag_and_the_file(tmp_path: Path, pair: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"rsync_args": "-avn"}, pair)
    assert str(caught.value).startswith("--rsync-args: rsync option '-avn' (-n, --dry-run)")
    path = tmp_path / "pylsyncd.toml"
    path.write_text('[[pair]]\nsource = "/a"\ndestination = "/b"\nrsync_args = ["--inplace"]\n')
    message = env_error({"CONFIG": str(path)})
    assert "pylsyncd.toml pair 1: rsync_args: rsync option '--inplace' is refused" in message


def test_the_option_lists_know_every_option_of_the_installed_rsync() -> None:
    """An option rsync gained must be sorted: taking a value or not, refused or not."""
    assert shutil.which("rsync"), "rsync is needed (./dev test installs it as root)"
    help_text = subprocess.run(
        ["rsync", "--help"], capture_output=True, text=True, check=False, timeout=30
    ).stdout
    for line in help_text.splitlines():
        spec = line.strip().split("  ")[0]  # the options, before their description
        for name, equals in re.findall(r"--([\w-]+)(=?)", spec):
            if name != "no-OPTION":
                known = rsync_options.TAKES_VALUE if equals else rsync_options.TAKES_NONE
                assert name in known, line


# --- through the command line ------------------------------------------------------------------


CLI_CASES: list[tuple[str, list[str], dict[str, str], str, str]] = [
    ("delay env", [], {"DELAY": "1e9"}, "", "DELAY='1e9' is not valid"),
    ("grace flag", ["--shutdown-grace", "inf"], {}, "", "--shutdown-grace='inf' is not valid"),
    ("poll file", [], {}, "poll_period = 1e9\n", "poll_period=1000000000.0 is not valid"),
    ("rsync env", [], {"RSYNC_ARGS": "-avn"}, "", "'-avn' (-n, --dry-run) is refused"),
    ("rsync flag", ["--rsync-args=--remove-sou"], {}, "", "of --remove-source-files"),
    ("rsync file", [], {}, 'rsync_args = ["--delete-excluded"]\n', "'--delete-excluded'"),
]


@pytest.mark.parametrize(
    ("args", "env", "toml", "expected"),
    [case[1:] for case in CLI_CASES],
    ids=[case[0] for case in CLI_CASES],
)
def test_refusal_is_exit_2_one_line_nothing_touched(
    tmp_path: Path, args: list[str], env: dict[str, str], toml: str, expected: str
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "kept").write_text("the user's file\n")
    config = tmp_path / "pylsyncd.toml"
    if toml:
        config.write_text(toml)
        args = [*args, "--config", str(config)]
    result = run_cli(
        str(source), str(tmp_path / "dst"), *args, "--backend=rsync", cwd=tmp_path, env=env
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("pylsyncd: error: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["src", *(["pylsyncd.toml"] if toml else [])]
    )
    assert [path.name for path in source.iterdir()] == ["kept"]


# --- sizes -------------------------------------------------------------------------------------

SIZES = {
    "16M": 16 * 2**20,
    "16MiB": 16 * 2**20,
    "16mb": 16 * 10**6,
    "1536K": 1536 * 1024,
    "1G": 2**30,
    "0": 0,
    " 4096 ": 4096,
}


@pytest.mark.parametrize(("text", "size"), SIZES.items())
def test_in_place_size_reads_units_as_rsync_does(
    pair: dict[str, str], text: str, size: int
) -> None:
    assert load_config({}, {**pair, "IN_PLACE_SIZE": text}).pairs[0].in_place_size == size


@pytest.mark.parametrize("text", ["16Q", "-1", "1.5M", "2E", "M", "4096 bytes", "2000000T"])
def test_in_place_size_refuses_what_is_not_a_size(pair: dict[str, str], text: str) -> None:
    message = env_error({**pair, "IN_PLACE_SIZE": text})
    assert message.startswith(f"IN_PLACE_SIZE={text!r} is not valid: give a size"), message


def test_in_place_size_refused_on_the_command_line_exits_2_with_one_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "src").mkdir()
    result = run_cli(
        str(tmp_path / "src"), str(tmp_path / "dst"), "--in-place-size", "lots", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--in-place-size='lots'" in result.stderr
    assert not (tmp_path / "dst").exists()
