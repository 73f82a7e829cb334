"""The command line: `python -m pylsyncd` as a user runs it, and `resolve`/`main` in-process."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import pytest

import pylsyncd
from helpers import run_cli
from pylsyncd import cli
from pylsyncd.config import ENV_VARS, Backend, Config, DeleteMode


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    path.mkdir()
    return path


# --- as a subprocess ---------------------------------------------------------------------------


def test_check_prints_every_pair_and_setting(tmp_path: Path, src: Path) -> None:
    (tmp_path / "other").mkdir()
    result = run_cli(
        "check",
        str(src),
        f"{tmp_path}/dst/",
        "--exclude",
        ".git",
        "--exclude=*.tmp",
        f"{tmp_path}/other",
        f"{tmp_path}/other-copy",
        "--no-init",
        cwd=tmp_path,
        env={"DELAY": "0.5", "BACKEND": "rsync", "RSYNC_ARGS": "-z", "LOG_LEVEL": "warning"},
    )
    assert (result.returncode, result.stderr) == (0, "")
    out = result.stdout
    assert f"pair 1: {src} -> {tmp_path}/dst\n" in out
    assert f"pair 2: {tmp_path}/other -> {tmp_path}/other-copy\n" in out
    assert out.count("excludes:             .git '*.tmp'\n") == 2
    assert out.count("delay:                0.5 s\n") == 2
    assert out.count("backend:              rsync\n") == 2
    assert out.count("delete:               true\n") == 2
    assert out.count("init:                 false\n") == 2
    assert out.count("rsync_args:           -z\n") == 2
    assert out.count("allow_empty_source:   false\n") == 2
    assert "log_level:            warning\n" in out
    assert "shutdown_grace:       10 s\n" in out
    assert not (tmp_path / "dst").exists()
    assert not (tmp_path / "other-copy").exists()


def test_check_with_the_seed_environment(tmp_path: Path) -> None:
    for name in ("src.mounted", "output"):
        (tmp_path / name).mkdir()
    env = {
        "SOURCES": f"{tmp_path}/src.mounted:{tmp_path}/output",
        "DESTINATIONS": f"{tmp_path}/src:{tmp_path}/output.mounted",
        "EXCLUDES": ".git:.svn",
    }
    result = run_cli("check", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert f"pair 2: {tmp_path}/output -> {tmp_path}/output.mounted" in result.stdout
    assert result.stdout.count("excludes:             .git .svn\n") == 2


def test_version(tmp_path: Path) -> None:
    result = run_cli("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"pylsyncd {pylsyncd.__version__}\n")


def test_help_names_every_setting_and_env_var(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for name in ENV_VARS:
        assert name in result.stdout, name
    flags = ["--exclude", "--exclude-from", "--delay", "--backend", "--delete", "--init"]
    flags += ["--no-init", "--log-level", "--rsync-args", "--allow-empty-source"]
    flags += ["--shutdown-grace", "--config", "--version", "check"]
    for flag in flags:
        assert flag in result.stdout, flag


BAD_INPUT: list[tuple[str, list[str], dict[str, str], str]] = [
    ("unknown value", ["SRC", "DST"], {"DELETE": "maybe"}, "DELETE='maybe'"),
    ("counts differ", [], {"SOURCES": "SRC", "DESTINATIONS": "DST:/b"}, "SOURCES has 1 entry"),
    ("relative path", ["SRC", "dst"], {}, "'dst' is not an absolute path"),
    ("odd argument count", ["SRC", "DST", "SRC"], {}, "has no destination"),
    ("destination inside source", ["SRC", "SRC/DST"], {}, "is inside its source"),
    ("missing source", ["SRC/nope", "DST"], {}, "does not exist"),
    ("bad delay flag", ["SRC", "DST", "--delay", "soon"], {}, "--delay='soon'"),
    ("unknown flag", ["SRC", "DST", "--frobnicate"], {}, "unrecognized arguments: --frobnicate"),
    ("flag without value", ["SRC", "DST", "--delay"], {}, "--delay: expected one argument"),
    ("value like an option", ["SRC", "DST", "--rsync-args", "-z"], {}, "--option=VALUE"),
    ("missing config", ["SRC", "DST", "--config", "nope.toml"], {}, "'nope.toml' does not exist"),
    ("bad exclude", ["SRC", "DST"], {"EXCLUDES": "a["}, "EXCLUDES: "),
    ("no pairs", [], {}, "no directories to mirror"),
    ("check with bad input", ["check", "SRC", "SRC"], {}, "same directory as its source"),
]


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, src: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    def fill(text: str) -> str:
        return text.replace("SRC", str(src)).replace("DST", f"{tmp_path}/dst")

    result = run_cli(
        *[fill(arg) for arg in args],
        cwd=tmp_path,
        env={name: fill(value) for name, value in env.items()},
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("pylsyncd: error: ")
    assert result.stderr.count("\n") == 1
    assert result.stderr.endswith("\n")
    assert "Traceback" not in result.stderr
    assert fill(expected) in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["src"]
    assert list(src.iterdir()) == []


# --- in-process --------------------------------------------------------------------------------


def test_resolve_reads_every_flag(tmp_path: Path, src: Path) -> None:
    (tmp_path / "more").write_text("*.log\n")
    command, config = cli.resolve(
        [
            str(src),
            "--exclude=.git",
            f"{tmp_path}/dst",
            "--exclude",
            "*.tmp",
            "--exclude-from",
            f"{tmp_path}/more",
            "--delay=0",
            "--backend=RSYNC",
            "--delete",
            "startup",
            "--no-init",
            "--log-level=debug",
            "--rsync-args=-z --bwlimit=1M",
            "--allow-empty-source",
            "--shutdown-grace",
            "3",
        ],
        {},
    )
    assert command == "run"
    pair = config.pairs[0]
    assert (pair.source, pair.destination) == (str(src), f"{tmp_path}/dst")
    assert pair.excludes == (".git", "*.tmp", "*.log")
    assert (pair.delay, pair.backend, pair.delete) == (0.0, Backend.RSYNC, DeleteMode.STARTUP)
    assert (pair.init, pair.allow_empty_source) == (False, True)
    assert pair.rsync_args == ("-z", "--bwlimit=1M")
    assert (config.log_level, config.shutdown_grace) == ("debug", 3.0)


def test_flags_beat_env(tmp_path: Path, src: Path) -> None:
    environ = {"INIT": "false", "ALLOW_EMPTY_SOURCE": "true", "EXCLUDES": ".git", "DELAY": "1"}
    argv = ["check", str(src), f"{tmp_path}/d", "--init", "--no-allow-empty-source"]
    argv += ["--delay", "2", "--exclude", ".svn"]
    command, config = cli.resolve(argv, environ)
    assert command == "check"
    pair = config.pairs[0]
    assert (pair.init, pair.allow_empty_source, pair.delay, pair.excludes) == (
        True,
        False,
        2.0,
        (".svn",),
    )


def test_empty_rsync_args_flag_clears_the_env(tmp_path: Path, src: Path) -> None:
    _, config = cli.resolve([str(src), f"{tmp_path}/d", "--rsync-args="], {"RSYNC_ARGS": "-z"})
    assert config.pairs[0].rsync_args == ()


def test_main_runs_the_supervisor_with_the_config(
    tmp_path: Path, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[Config] = []

    def run(config: Config) -> int:
        received.append(config)
        return 7

    supervisor = types.ModuleType("pylsyncd.supervisor")
    supervisor.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pylsyncd.supervisor", supervisor)
    monkeypatch.setattr(pylsyncd, "supervisor", supervisor, raising=False)
    logger = logging.getLogger("pylsyncd")
    try:
        assert cli.main([str(src), f"{tmp_path}/d", "--log-level", "warning"]) == 7
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(logging.NOTSET)
    assert [pair.destination for pair in received[0].pairs] == [f"{tmp_path}/d"]


def test_main_reports_a_config_error_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--delete", "maybe", "/a", "/b"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "pylsyncd: error: --delete='maybe' is not valid: use one of true, false, startup, running\n"
    )


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["--help"])
    assert caught.value.code == 0
    assert "SOURCES" in capsys.readouterr().out
