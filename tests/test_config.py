"""Configuration: sources, precedence, the TOML format and every validation error."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pylsyncd.config import (
    Backend,
    Config,
    ConfigError,
    DeleteMode,
    PairConfig,
    WatchMode,
    load_config,
)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """An existing source directory."""
    path = tmp_path / "src"
    path.mkdir()
    return path


@pytest.fixture
def dst(tmp_path: Path) -> Path:
    """A destination that does not exist yet."""
    return tmp_path / "dst"


def load(environ: Mapping[str, str] | None = None, **flags: Any) -> Config:
    return load_config(flags, environ or {})


def error_of(environ: Mapping[str, str] | None = None, **flags: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(environ, **flags)
    message = str(caught.value)
    assert "\n" not in message
    return message


def pair_env(*pairs: tuple[Path | str, Path | str]) -> dict[str, str]:
    return {
        "SOURCES": ":".join(str(source) for source, _ in pairs),
        "DESTINATIONS": ":".join(str(destination) for _, destination in pairs),
    }


def write_toml(tmp_path: Path, text: str, name: str = "pylsyncd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- pairs ------------------------------------------------------------------------------------


def test_env_pairs_keep_their_order_and_get_the_defaults(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    config = load(pair_env((tmp_path / "a", tmp_path / "x"), (tmp_path / "b", tmp_path / "y")))
    assert config == Config(
        pairs=(
            PairConfig(str(tmp_path / "a"), str(tmp_path / "x")),
            PairConfig(str(tmp_path / "b"), str(tmp_path / "y")),
        )
    )
    assert config.pairs[0].delay == 0.02
    assert config.pairs[0].backend is Backend.DIRECT
    assert config.pairs[0].delete is DeleteMode.TRUE
    assert config.pairs[0].init is True
    assert config.pairs[0].allow_empty_source is False
    assert (config.log_level, config.shutdown_grace) == ("info", 10.0)


def test_paths_are_normalised_but_symlinks_are_kept(tmp_path: Path, src: Path) -> None:
    (tmp_path / "link").symlink_to(src)
    config = load(paths=(f"/{tmp_path}/./link/", f"{tmp_path}/other/../dst//"))
    assert config.pairs[0].source == str(tmp_path / "link")
    assert config.pairs[0].destination == str(tmp_path / "dst")


def test_arguments_beat_env_and_env_beats_file_pairs(tmp_path: Path, src: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    toml = write_toml(tmp_path, f'[[pair]]\nsource = "{other}"\ndestination = "{tmp_path}/f"\n')
    env = {**pair_env((src, tmp_path / "e")), "CONFIG": str(toml)}
    assert load(env, paths=(str(src), f"{tmp_path}/a")).pairs[0].destination == f"{tmp_path}/a"
    assert load(env).pairs[0].destination == f"{tmp_path}/e"
    assert load({"CONFIG": str(toml)}).pairs[0].destination == f"{tmp_path}/f"


def test_nothing_is_created_on_disk(tmp_path: Path, src: Path, dst: Path) -> None:
    before = sorted(tmp_path.rglob("*"))
    load(paths=(str(src), str(dst / "deep" / "er")))
    assert sorted(tmp_path.rglob("*")) == before


def test_side_by_side_names_are_not_nested(tmp_path: Path) -> None:
    # The seed's own example: /output is not inside /output.mounted, nor /src in /src.mounted.
    for name in ("src.mounted", "output"):
        (tmp_path / name).mkdir()
    config = load(
        pair_env(
            (tmp_path / "src.mounted", tmp_path / "src"),
            (tmp_path / "output", tmp_path / "output.mounted"),
        )
    )
    assert len(config.pairs) == 2


def test_one_source_may_feed_two_destinations(tmp_path: Path, src: Path) -> None:
    config = load(paths=(str(src), f"{tmp_path}/one", str(src), f"{tmp_path}/two"))
    assert [pair.destination for pair in config.pairs] == [f"{tmp_path}/one", f"{tmp_path}/two"]


# --- pair errors -------------------------------------------------------------------------------


def test_counts_differ(tmp_path: Path) -> None:
    environ = {"SOURCES": "/a:/b", "DESTINATIONS": "/c"}
    assert error_of(environ) == (
        "SOURCES has 2 entries but DESTINATIONS has 1: "
        "give one destination per source, in the same order"
    )


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SOURCES": "/a"}, "DESTINATIONS is not"),
        ({"DESTINATIONS": "/a"}, "SOURCES is not"),
    ],
)
def test_sources_and_destinations_come_together(environ: dict[str, str], named: str) -> None:
    assert named in error_of(environ)


@pytest.mark.parametrize("sources", ["/a::/b", "/a:/b:", ":/a:/b"])
def test_empty_entry(sources: str) -> None:
    message = error_of({"SOURCES": sources, "DESTINATIONS": "/c:/d:/e"})
    assert message.startswith(f"SOURCES={sources!r} has an empty entry")


@pytest.mark.parametrize("bad", ["src", "./src", "~/src"])
def test_relative_source(bad: str, dst: Path) -> None:
    message = error_of(pair_env((bad, dst)))
    assert f"SOURCES entry {bad!r} is not an absolute path" in message


def test_relative_destination_argument(src: Path) -> None:
    assert "DST argument 'out' is not an absolute path" in error_of(paths=(str(src), "out"))
    assert "DST argument '' is not an absolute path" in error_of(paths=(str(src), ""))


def test_odd_argument_count(src: Path, dst: Path) -> None:
    message = error_of(paths=(str(src), str(dst), "/third"))
    assert "'/third' has no destination" in message


def test_missing_source(tmp_path: Path, dst: Path) -> None:
    message = error_of(pair_env((tmp_path / "nope", dst)))
    assert f"'{tmp_path}/nope' does not exist" in message


def test_source_is_a_file(tmp_path: Path, dst: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert f"'{tmp_path}/file' is not a directory" in error_of(pair_env((tmp_path / "file", dst)))


def test_destination_is_a_file(tmp_path: Path, src: Path) -> None:
    (tmp_path / "file").write_text("x")
    message = error_of(pair_env((src, tmp_path / "file")))
    assert f"'{tmp_path}/file' exists but is not a directory" in message


def test_no_pairs_at_all_says_how_to_give_them() -> None:
    message = error_of({})
    assert "SRC DST" in message
    assert "SOURCES" in message
    assert "[[pair]]" in message


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("src", "is the same directory as its source"),
        ("src/", "is the same directory as its source"),
        ("src/sub/deeper", "is inside its source"),
        ("link/sub", "is inside its source"),  # a symlink into the source does not hide the loop
        ("", "is inside its destination"),  # the source is inside the destination
    ],
)
def test_feedback_loop(tmp_path: Path, src: Path, destination: str, expected: str) -> None:
    (tmp_path / "link").symlink_to(src)
    path = os.path.join(tmp_path, destination) if destination else str(tmp_path)
    message = error_of(paths=(str(src), path))
    assert expected in message
    assert os.path.normpath(path) in message


def test_two_pairs_share_a_destination(tmp_path: Path, src: Path, dst: Path) -> None:
    (tmp_path / "other").mkdir()
    message = error_of(pair_env((src, dst), (tmp_path / "other", f"{dst}/")))
    assert f"{src} -> {dst} and {tmp_path}/other -> {dst} share a destination" in message


def test_destination_inside_another_destination(tmp_path: Path, src: Path, dst: Path) -> None:
    (tmp_path / "other").mkdir()
    message = error_of(pair_env((src, dst), (tmp_path / "other", dst / "sub")))
    assert "one destination inside the other" in message
    assert f"{dst}/sub" in message


def test_pairs_mirroring_each_other(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    message = error_of(pair_env((tmp_path / "a", tmp_path / "b"), (tmp_path / "b", tmp_path / "a")))
    assert "mirror each other" in message and "MODE=two-way" in message
    assert f"{tmp_path}/a -> {tmp_path}/b" in message


def test_pairs_mirroring_each_other_through_subdirectories(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    environ = pair_env((tmp_path / "a", tmp_path / "b/in"), (tmp_path / "b", tmp_path / "a/in"))
    assert "give one pair with MODE=two-way" in error_of(environ)


def test_a_chain_is_not_a_mirror(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    config = load(pair_env((tmp_path / "a", tmp_path / "b"), (tmp_path / "b", tmp_path / "c")))
    assert len(config.pairs) == 2


# --- settings from the environment ----------------------------------------------------------


@pytest.fixture
def env_pair(src: Path, dst: Path) -> dict[str, str]:
    return pair_env((src, dst))


@pytest.mark.parametrize(
    ("name", "value", "fix"),
    [
        ("BACKEND", "foo", "use one of direct, rsync"),
        ("DELETE", "maybe", "use one of true, false, startup, running"),
        ("INIT", "perhaps", "use true or false"),
        ("ALLOW_EMPTY_SOURCE", "sometimes", "use true or false"),
        ("LOG_LEVEL", "loud", "use one of debug, info, warning, error"),
        ("DELAY", "abc", "give a number of seconds >= 0"),
        ("DELAY", "-1", "give a number of seconds >= 0"),
        ("DELAY", "nan", "give a number of seconds >= 0"),
        ("DELAY", "inf", "give a number of seconds >= 0"),
        ("DELAY", "1e300", "give a number of seconds >= 0"),
        ("SHUTDOWN_GRACE", "0", "give a number of seconds > 0"),
        ("SHUTDOWN_GRACE", "-5", "give a number of seconds > 0"),
        ("SHUTDOWN_GRACE", "ten", "give a number of seconds > 0"),
        ("SHUTDOWN_GRACE", "-inf", "give a number of seconds > 0"),
        ("WATCH", "fsevents", "use one of auto, inotify, poll, hybrid"),
        ("POLL_INTERVAL", "0", "give a number of seconds > 0"),
    ],
)
def test_invalid_env_value(env_pair: dict[str, str], name: str, value: str, fix: str) -> None:
    assert error_of({**env_pair, name: value}).startswith(f"{name}={value!r} is not valid: {fix}")


def test_delete_message_is_exact(env_pair: dict[str, str]) -> None:
    assert error_of({**env_pair, "DELETE": "maybe"}) == (
        "DELETE='maybe' is not valid: use one of true, false, startup, running"
    )


@pytest.mark.parametrize(
    ("word", "value"),
    [
        *[(word, True) for word in ("true", "TRUE", "Yes", "on", "1", " true ")],
        *[(word, False) for word in ("false", "False", "NO", "off", "0")],
    ],
)
def test_booleans(env_pair: dict[str, str], word: str, value: bool) -> None:
    pair = load({**env_pair, "INIT": word, "ALLOW_EMPTY_SOURCE": word}).pairs[0]
    assert (pair.init, pair.allow_empty_source) == (value, value)


def test_enums_ignore_case(env_pair: dict[str, str]) -> None:
    config = load({**env_pair, "BACKEND": "RSYNC", "DELETE": "Startup", "LOG_LEVEL": "DEBUG"})
    assert config.pairs[0].backend is Backend.RSYNC
    assert config.pairs[0].delete is DeleteMode.STARTUP
    assert config.log_level == "debug"


def test_numbers(env_pair: dict[str, str]) -> None:
    config = load({**env_pair, "DELAY": "0", "SHUTDOWN_GRACE": "2.5"})
    assert (config.pairs[0].delay, config.shutdown_grace) == (0.0, 2.5)


@pytest.mark.parametrize("excludes", [None, ""])
def test_unset_or_empty_excludes_exclude_nothing(
    env_pair: dict[str, str], excludes: str | None
) -> None:
    environ = env_pair if excludes is None else {**env_pair, "EXCLUDES": excludes}
    assert load(environ).pairs[0].excludes == ()


def test_excludes_are_split_on_colons(env_pair: dict[str, str]) -> None:
    pair = load({**env_pair, "EXCLUDES": ".git:.svn:*.tmp"}).pairs[0]
    assert pair.excludes == (".git", ".svn", "*.tmp")


def test_empty_exclude_entry(env_pair: dict[str, str]) -> None:
    message = error_of({**env_pair, "EXCLUDES": ".git::.svn"})
    assert message.startswith("EXCLUDES='.git::.svn' has an empty entry")


def test_exclude_from_skips_blank_lines_and_comments(
    tmp_path: Path, env_pair: dict[str, str]
) -> None:
    patterns = tmp_path / "excludes"
    patterns.write_text("# editor files\n*.swp\n\n; build output\nbuild/\n   \nnode_modules\n")
    pair = load({**env_pair, "EXCLUDES": ".git", "EXCLUDE_FROM": str(patterns)}).pairs[0]
    assert pair.excludes == (".git", "*.swp", "build/", "node_modules")


def test_exclude_from_reads_crlf_files(tmp_path: Path, env_pair: dict[str, str]) -> None:
    patterns = tmp_path / "excludes"
    patterns.write_bytes(b"# from a Windows host\r\n*.swp\r\nbuild/\r\n")
    assert load({**env_pair, "EXCLUDE_FROM": str(patterns)}).pairs[0].excludes == (
        "*.swp",
        "build/",
    )


def test_missing_exclude_from(tmp_path: Path, env_pair: dict[str, str]) -> None:
    message = error_of({**env_pair, "EXCLUDE_FROM": f"{tmp_path}/nope"})
    assert message == f"EXCLUDE_FROM file '{tmp_path}/nope' does not exist: fix the path"


def test_unreadable_exclude_from(tmp_path: Path, env_pair: dict[str, str]) -> None:
    message = error_of({**env_pair, "EXCLUDE_FROM": str(tmp_path)})
    assert f"EXCLUDE_FROM file '{tmp_path}' cannot be read" in message


def test_rsync_args_are_split_like_a_shell(env_pair: dict[str, str]) -> None:
    pair = load({**env_pair, "RSYNC_ARGS": "-z --bwlimit=1000 --chmod='u+rw g+r'"}).pairs[0]
    assert pair.rsync_args == ("-z", "--bwlimit=1000", "--chmod=u+rw g+r")


def test_rsync_args_with_an_open_quote(env_pair: dict[str, str]) -> None:
    message = error_of({**env_pair, "RSYNC_ARGS": "-e 'ssh"})
    assert message.startswith('RSYNC_ARGS="-e \'ssh" cannot be split')


def test_a_value_is_checked_even_when_a_flag_overrides_it(env_pair: dict[str, str]) -> None:
    assert "DELAY='soon'" in error_of({**env_pair, "DELAY": "soon"}, delay="1")


# --- exclude patterns checked by pylsyncd.excludes ---------------------------------------------


class _StrictRules:
    """Stands in for pylsyncd.excludes.ExcludeRules: refuses an unclosed '['."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        for pattern in patterns:
            if "[" in pattern and "]" not in pattern:
                raise ValueError(f"pattern {pattern!r} has an unclosed '['")


@pytest.fixture
def strict_excludes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    module = types.ModuleType("pylsyncd.excludes")
    module.ExcludeRules = _StrictRules  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pylsyncd.excludes", module)
    yield


@pytest.mark.usefixtures("strict_excludes")
def test_malformed_exclude_in_env(env_pair: dict[str, str]) -> None:
    message = error_of({**env_pair, "EXCLUDES": ".git:[abc"})
    assert message == "EXCLUDES: pattern '[abc' has an unclosed '['; fix or remove that pattern"


@pytest.mark.usefixtures("strict_excludes")
def test_malformed_exclude_in_a_file(tmp_path: Path, env_pair: dict[str, str]) -> None:
    patterns = tmp_path / "excludes"
    patterns.write_text("ok\nbad[\n")
    message = error_of({**env_pair, "EXCLUDE_FROM": str(patterns)})
    assert message.startswith(f"EXCLUDE_FROM file '{patterns}': pattern 'bad[' has an unclosed")


@pytest.mark.usefixtures("strict_excludes")
def test_malformed_exclude_flag(env_pair: dict[str, str]) -> None:
    assert "'x[' has an unclosed" in error_of(env_pair, excludes=("x[",))


def test_malformed_exclude_checked_by_the_real_rules(tmp_path: Path, src: Path) -> None:
    pytest.importorskip("pylsyncd.excludes")
    toml = write_toml(
        tmp_path, f'[[pair]]\nsource = "{src}"\ndestination = "/x"\nexcludes = ["a["]\n'
    )
    message = error_of({"CONFIG": str(toml)})
    assert message.startswith(f"{toml} pair 1: excludes: ")
    assert "'a['" in message


def test_empty_exclude_flag(env_pair: dict[str, str]) -> None:
    assert "--exclude has an empty exclude pattern" in error_of(env_pair, excludes=("",))


def test_without_the_excludes_module_patterns_pass_unchecked(
    monkeypatch: pytest.MonkeyPatch, env_pair: dict[str, str]
) -> None:
    monkeypatch.setitem(sys.modules, "pylsyncd.excludes", None)  # as if it did not exist
    assert load({**env_pair, "EXCLUDES": "[abc"}).pairs[0].excludes == ("[abc",)


# --- precedence --------------------------------------------------------------------------------

# setting: flag, env, [[pair]] line, top-level line, then the value each level gives (the last is
# the default).
PRECEDENCE: list[tuple[str, dict[str, Any], dict[str, str], str, str, list[Any]]] = [
    ("delay", {"delay": "4"}, {"DELAY": "3"}, "delay = 2", "delay = 1", [4, 3, 2, 1, 0.02]),
    (
        "backend",
        {"backend": "rsync"},
        {"BACKEND": "direct"},
        'backend = "rsync"',
        'backend = "direct"',
        [Backend.RSYNC, Backend.DIRECT, Backend.RSYNC, Backend.DIRECT, Backend.DIRECT],
    ),
    (
        "delete",
        {"delete": "startup"},
        {"DELETE": "running"},
        "delete = false",
        'delete = "startup"',
        ["startup", "running", "false", "startup", "true"],
    ),
    ("init", {"init": False}, {"INIT": "yes"}, "init = false", "init = true", [0, 1, 0, 1, 1]),
    (
        "allow_empty_source",
        {"allow_empty_source": True},
        {"ALLOW_EMPTY_SOURCE": "off"},
        "allow_empty_source = true",
        "allow_empty_source = false",
        [True, False, True, False, False],
    ),
    (
        "excludes",
        {"excludes": ("flag",)},
        {"EXCLUDES": "env1:env2"},
        'excludes = ["pair"]',
        'excludes = ["top1", "top2"]',
        [("flag",), ("env1", "env2"), ("pair",), ("top1", "top2"), ()],
    ),
    (
        "rsync_args",
        {"rsync_args": "--flag"},
        {"RSYNC_ARGS": "--env x"},
        'rsync_args = ["--pair"]',
        'rsync_args = ["--top"]',
        [("--flag",), ("--env", "x"), ("--pair",), ("--top",), ()],
    ),
]


@pytest.mark.parametrize(("setting", "flag", "env", "pair", "top", "expected"), PRECEDENCE)
@pytest.mark.parametrize("level", range(5))
def test_precedence_of_pair_settings(
    tmp_path: Path,
    src: Path,
    dst: Path,
    setting: str,
    flag: dict[str, Any],
    env: dict[str, str],
    pair: str,
    top: str,
    expected: list[Any],
    level: int,
) -> None:
    # Level 0 gives all four; each next level drops the highest one left.
    toml = write_toml(
        tmp_path,
        (top if level <= 3 else "")
        + f'\n[[pair]]\nsource = "{src}"\ndestination = "{dst}"\n'
        + (pair if level <= 2 else ""),
    )
    environ = {"CONFIG": str(toml), **(env if level <= 1 else {})}
    got = load(environ, **(flag if level == 0 else {})).pairs[0]
    value = getattr(got, setting)
    assert (value.value if setting == "delete" else value) == expected[level]


@pytest.mark.parametrize(
    ("flags", "environ", "top", "expected"),
    [
        ({"log_level": "error"}, {"LOG_LEVEL": "debug"}, 'log_level = "warning"', "error"),
        ({}, {"LOG_LEVEL": "debug"}, 'log_level = "warning"', "debug"),
        ({}, {}, 'log_level = "warning"', "warning"),
        ({}, {}, "", "info"),
    ],
)
def test_precedence_of_log_level(
    tmp_path: Path,
    env_pair: dict[str, str],
    flags: dict[str, Any],
    environ: dict[str, str],
    top: str,
    expected: str,
) -> None:
    toml = write_toml(tmp_path, top)
    assert load({**env_pair, **environ, "CONFIG": str(toml)}, **flags).log_level == expected


@pytest.mark.parametrize(
    ("flags", "environ", "top", "expected"),
    [
        ({"shutdown_grace": "4"}, {"SHUTDOWN_GRACE": "3"}, "shutdown_grace = 2", 4.0),
        ({}, {"SHUTDOWN_GRACE": "3"}, "shutdown_grace = 2", 3.0),
        ({}, {}, "shutdown_grace = 2", 2.0),
        ({}, {}, "", 10.0),
    ],
)
def test_precedence_of_shutdown_grace(
    tmp_path: Path,
    env_pair: dict[str, str],
    flags: dict[str, Any],
    environ: dict[str, str],
    top: str,
    expected: float,
) -> None:
    toml = write_toml(tmp_path, top)
    assert load({**env_pair, **environ, "CONFIG": str(toml)}, **flags).shutdown_grace == expected


def test_exclude_from_and_excludes_are_separate_settings(tmp_path: Path, src: Path) -> None:
    (tmp_path / "file_excludes").write_text("from-file\n")
    (tmp_path / "flag_excludes").write_text("from-flag\n")
    toml = write_toml(
        tmp_path,
        f'excludes = ["top"]\nexclude_from = "file_excludes"\n'
        f'[[pair]]\nsource = "{src}"\ndestination = "{tmp_path}/d"\n',
    )
    environ = {"CONFIG": str(toml)}
    assert load(environ).pairs[0].excludes == ("top", "from-file")
    replaced = load(environ, exclude_from=str(tmp_path / "flag_excludes")).pairs[0]
    assert replaced.excludes == ("top", "from-flag")
    assert load(environ, excludes=("flag",)).pairs[0].excludes == ("flag", "from-file")


def test_empty_excludes_env_leaves_the_file_excludes(
    tmp_path: Path, env_pair: dict[str, str]
) -> None:
    toml = write_toml(tmp_path, 'excludes = [".git"]')
    environ = {**env_pair, "CONFIG": str(toml), "EXCLUDES": ""}
    assert load(environ).pairs[0].excludes == (".git",)


def test_file_top_level_applies_to_pairs_from_arguments(tmp_path: Path, src: Path) -> None:
    toml = write_toml(tmp_path, 'backend = "rsync"\n')
    config = load(paths=(str(src), f"{tmp_path}/d"), config=str(toml))
    assert config.pairs[0].backend is Backend.RSYNC


def test_config_flag_beats_config_env(tmp_path: Path, env_pair: dict[str, str]) -> None:
    write_toml(tmp_path, "delay = 1", "env.toml")
    write_toml(tmp_path, "delay = 2", "flag.toml")
    environ = {**env_pair, "CONFIG": f"{tmp_path}/env.toml"}
    assert load(environ, config=f"{tmp_path}/flag.toml").pairs[0].delay == 2


# --- the TOML file -------------------------------------------------------------------------


def test_toml_pairs_with_their_own_settings(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "more_excludes").write_text("*.log\n")
    toml = write_toml(
        tmp_path,
        f"""
delay = 0.5
backend = "rsync"
excludes = [".git", "node_modules/"]
log_level = "warning"
shutdown_grace = 3
rsync_args = ["-z"]

[[pair]]
source = "{tmp_path}/a"
destination = "{tmp_path}/a-copy/"

[[pair]]
source = "{tmp_path}/b"
destination = "{tmp_path}/b-copy"
backend = "direct"
delete = "running"
init = false
excludes = []
exclude_from = "more_excludes"
allow_empty_source = true
delay = 0
""",
    )
    config = load({"CONFIG": str(toml)})
    assert config == Config(
        pairs=(
            PairConfig(
                f"{tmp_path}/a",
                f"{tmp_path}/a-copy",
                excludes=(".git", "node_modules/"),
                delay=0.5,
                backend=Backend.RSYNC,
                rsync_args=("-z",),
            ),
            PairConfig(
                f"{tmp_path}/b",
                f"{tmp_path}/b-copy",
                excludes=("*.log",),
                delay=0.0,
                backend=Backend.DIRECT,
                delete=DeleteMode.RUNNING,
                init=False,
                rsync_args=("-z",),
                allow_empty_source=True,
            ),
        ),
        log_level="warning",
        shutdown_grace=3.0,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("delays = 1", "pylsyncd.toml: unknown key 'delays': did you mean 'delay'?"),
        ("colour = 1", "pylsyncd.toml: unknown key 'colour': use one of excludes,"),
        ("[settings]\ndelay = 1", "unknown key 'settings'"),
        (
            '[[pair]]\nsource = "/a"\ndestination = "/b"\ndelai = 1',
            "pylsyncd.toml pair 1: unknown key 'delai': did you mean 'delay'?",
        ),
        (
            '[[pair]]\nsource = "/a"\ndestination = "/b"\nlog_level = "debug"',
            "pylsyncd.toml pair 1: log_level applies to the whole daemon: move it to the top",
        ),
        ("[pair]\nsource = 1", "pylsyncd.toml: [pair] holds one table: write [[pair]]"),
        ("pair = [1]", "pylsyncd.toml: pair must be a list of [[pair]] tables"),
        ('[[pair]]\nsource = "/a"', "pylsyncd.toml pair 1: destination is missing"),
        (
            '[[pair]]\nsource = 5\ndestination = "/b"',
            "source must be a path string, not an integer",
        ),
        ('delay = "0.5"', "pylsyncd.toml: delay must be a number of seconds (without quotes), not"),
        ("delay = true", "delay must be a number of seconds (without quotes), not a boolean"),
        ("delay = -1", "pylsyncd.toml: delay=-1 is not valid: give a number of seconds >= 0"),
        ("delay = nan", "pylsyncd.toml: delay=nan is not valid"),
        ("shutdown_grace = 0", "pylsyncd.toml: shutdown_grace=0 is not valid"),
        (
            'init = "yes"',
            "pylsyncd.toml: init must be true or false (without quotes), not a string",
        ),
        ('delete = "maybe"', "pylsyncd.toml: delete='maybe' is not valid: use one of true, false"),
        ("delete = 1", 'delete must be true, false, "startup" or "running", not an integer'),
        ('backend = "scp"', "pylsyncd.toml: backend='scp' is not valid: use one of direct, rsync"),
        ('excludes = ".git"', "excludes must be an array of strings"),
        ("excludes = [1]", "excludes must be an array of strings"),
        ('rsync_args = "-z"', 'rsync_args must be an array of strings, e.g. ["-z", "--bwlimit'),
        ('ssh_args = "-p 22"', 'ssh_args must be an array of strings, e.g. ["-p", "2222"'),
        ('exclude_from = "missing"', "pylsyncd.toml: exclude_from file '"),
        ("delay = ", "is not valid TOML"),
        ("a = 1\na = 2", "is not valid TOML"),
    ],
)
def test_toml_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)  # so labels show the path as given: pylsyncd.toml
    write_toml(tmp_path, text)
    assert expected in error_of({"CONFIG": "pylsyncd.toml"})


def test_toml_paths_are_checked_like_any_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_toml(tmp_path, '[[pair]]\nsource = "src"\ndestination = "/b"\n')
    message = error_of({"CONFIG": "pylsyncd.toml"})
    assert message.startswith("pylsyncd.toml pair 1: source 'src' is not an absolute path")


def test_toml_that_is_not_utf8(tmp_path: Path) -> None:
    toml = tmp_path / "pylsyncd.toml"
    toml.write_bytes(b'delay = "\xff"\n')
    assert "is not valid TOML" in error_of({"CONFIG": str(toml)})


@pytest.mark.parametrize("via", ["flag", "env"])
def test_missing_config_file(tmp_path: Path, via: str) -> None:
    missing = f"{tmp_path}/nope.toml"
    if via == "flag":
        assert error_of(config=missing) == f"--config file '{missing}' does not exist: fix the path"
    else:
        message = error_of({"CONFIG": missing})
        assert message == f"CONFIG file '{missing}' does not exist: fix the path"


def test_unreadable_config_file(tmp_path: Path) -> None:
    assert f"--config file '{tmp_path}' cannot be read" in error_of(config=str(tmp_path))


def test_file_pairs_are_ignored_when_env_gives_pairs(
    tmp_path: Path, env_pair: dict[str, str]
) -> None:
    # The file's pairs are not used, so their paths are not checked either.
    toml = write_toml(tmp_path, '[[pair]]\nsource = "/does/not/exist"\ndestination = "/x"\n')
    assert len(load({**env_pair, "CONFIG": str(toml)}).pairs) == 1


def test_toml_file_without_pairs_and_no_other_pairs(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, "delay = 1\n")
    assert error_of({"CONFIG": str(toml)}).startswith("no directories to mirror")


def test_watch_and_poll_interval_follow_the_precedence(tmp_path: Path, src: Path) -> None:
    config_file = write_toml(
        tmp_path,
        f'watch = "hybrid"\npoll_interval = 5\n[[pair]]\nsource = "{src}"\n'
        f'destination = "{tmp_path / "d"}"\npoll_interval = 3\n',
    )
    from_file = load(config=str(config_file)).pairs[0]
    assert (from_file.watch, from_file.poll_interval) == (WatchMode.HYBRID, 3.0)
    from_env = load({"WATCH": "POLL", "CONFIG": str(config_file)}).pairs[0]
    assert (from_env.watch, from_env.poll_interval) == (WatchMode.POLL, 3.0)
    from_flag = load({"WATCH": "poll"}, config=str(config_file), watch="inotify").pairs[0]
    assert from_flag.watch is WatchMode.INOTIFY
    default = load(pair_env((src, tmp_path / "e"))).pairs[0]
    assert (default.watch, default.poll_interval) == (WatchMode.AUTO, 0.2)
