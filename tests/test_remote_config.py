"""Remote destinations in the configuration: both forms, DESTINATIONS's list, SSH_ARGS, BACKEND,
and bad input (one line, exit 2, nothing touched)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from helpers import run_cli
from pylsyncd.config import Backend, Config, ConfigError, load_config
from pylsyncd.config.remote import RemoteDestination, parse_remote, split_destinations


def load(environ: Mapping[str, str] | None = None, **flags: Any) -> Config:
    return load_config(flags, environ or {})


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("root@127.0.0.1:/srv/app", RemoteDestination("127.0.0.1", "/srv/app", "root")),
        ("host:/srv/app/", RemoteDestination("host", "/srv/app")),
        ("ssh://host/srv//app", RemoteDestination("host", "/srv/app")),
        ("ssh://me@host:2222/srv", RemoteDestination("host", "/srv", "me", 2222)),
        ("[::1]:/srv", RemoteDestination("::1", "/srv")),
        ("ssh://u@[fe80::1%eth0]:22/srv", RemoteDestination("fe80::1%eth0", "/srv", "u", 22)),
        ("host:/a b/c:d", RemoteDestination("host", "/a b/c:d")),  # one value: ':' is a name's
    ],
)
def test_remote_forms(text: str, expected: RemoteDestination) -> None:
    assert parse_remote(text, "DST argument") == expected


def test_a_local_path_is_not_remote() -> None:
    assert parse_remote("/srv/app", "DST argument") is None


def test_the_written_forms_round_trip() -> None:
    remote = RemoteDestination("::1", "/srv", "u", 2222)
    assert str(remote) == "ssh://u@[::1]:2222/srv"
    assert parse_remote(str(remote), "x") == remote
    assert remote.rsync_path == "u@[::1]:/srv/"


@pytest.mark.parametrize(
    ("text", "entries"),
    [
        # Local values keep the meaning they had: every ':' separates two paths.
        ("/a", ["/a"]),
        ("/a:/b c:/d", ["/a", "/b c", "/d"]),
        ("/a@b:/c", ["/a@b", "/c"]),
        # A remote entry is one entry.
        ("root@127.0.0.1:/srv/app", ["root@127.0.0.1:/srv/app"]),
        ("/a:root@127.0.0.1:/srv/app:/b", ["/a", "root@127.0.0.1:/srv/app", "/b"]),
        ("ssh://u@h:2222/x:/y", ["ssh://u@h:2222/x", "/y"]),
        ("ssh://h/x:h2:/y", ["ssh://h/x", "h2:/y"]),
        ("[::1]:/x:ssh://[::1]:22/y:/z", ["[::1]:/x", "ssh://[::1]:22/y", "/z"]),
    ],
)
def test_destinations_list(text: str, entries: list[str]) -> None:
    assert split_destinations(text, "DESTINATIONS") == entries


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/a::/b", "has an empty entry"),
        ("/a:", "has an empty entry"),
        (":/a", "has an empty entry"),
        ("/a:relative", "entry 'relative' is neither an absolute path nor a remote destination"),
        ("/a:host:relative", "entry 'host' is neither"),
    ],
)
def test_bad_destinations_lists(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split_destinations(text, "DESTINATIONS")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("host:relative", "relative remote path 'relative'"),
        ("host:", "relative remote path ''"),
        ("ssh://host", "not a valid ssh:// destination"),
        ("ssh://host:port/x", "not a valid ssh:// destination"),
        ("ssh://host:0/x", "port 0: give a port from 1 to 65535"),
        ("relative", "is not an absolute path: give a path starting with /"),
        ("-oProxyCommand=sh:/x", "a host starting with '-' \\('-oProxyCommand=sh'\\)"),
        ("ssh://-oProxyCommand=sh/x", "a host starting with '-'"),
        ("ssh://-l@h/x", "a user starting with '-' \\('-l'\\)"),
        ("h:/", "is the root directory of h: the mirror would replace everything on it"),
        ("ssh://h:22/srv/..", "is the root directory of h"),
    ],
)
def test_bad_remote_specs(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_remote(text, "DST argument")


def test_pairs_from_the_environment(src: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    config = load(
        {
            "SOURCES": f"{src}:{other}",
            "DESTINATIONS": "root@127.0.0.1:/srv/app:ssh://h:2222/x",
            "SSH_ARGS": "-i /keys/id -o 'UserKnownHostsFile=/keys/known hosts'",
        }
    )
    first, second = config.pairs
    assert first.remote == RemoteDestination("127.0.0.1", "/srv/app", "root")
    assert first.destination == "ssh://root@127.0.0.1/srv/app"
    assert second.remote == RemoteDestination("h", "/x", port=2222)
    assert first.ssh_args == ("-i", "/keys/id", "-o", "UserKnownHostsFile=/keys/known hosts")
    assert first.backend is Backend.RSYNC  # BACKEND unset: rsync, the one that reaches a host


def test_a_pair_from_the_toml_file(src: Path, tmp_path: Path) -> None:
    file = tmp_path / "pylsyncd.toml"
    file.write_text(
        f'ssh_args = ["-p", "2222"]\n[[pair]]\nsource = "{src}"\ndestination = "h:/srv/a:b"\n'
    )
    (pair,) = load(config=str(file)).pairs
    assert pair.remote == RemoteDestination("h", "/srv/a:b")
    assert pair.ssh_args == ("-p", "2222")


def test_the_direct_backend_is_refused_for_a_remote(src: Path) -> None:
    with pytest.raises(ConfigError, match="the direct backend is local only"):
        load(paths=[str(src), "h:/x"], backend="direct")


@pytest.mark.parametrize(
    "args", ["-M", "-S /tmp/s", "-oControlPath=/tmp/x", "-o ControlMaster=yes", "-f", "-N"]
)
def test_ssh_args_the_daemon_sets_itself_are_refused(src: Path, args: str) -> None:
    with pytest.raises(ConfigError, match="the daemon runs its own ssh master"):
        load({"SSH_ARGS": args}, paths=[str(src), "h:/x"])


@pytest.mark.parametrize(
    ("one", "two"),
    [("h:/x", "ssh://h/x/"), ("h:/x", "u@h:/x/sub"), ("ssh://h:2222/x/a", "ssh://u@h:2222/x")],
)
def test_two_pairs_may_not_share_a_remote_destination(
    src: Path, tmp_path: Path, one: str, two: str
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ConfigError, match="share a destination, or one is inside the other"):
        load(paths=[str(src), one, str(other), two])


@pytest.mark.parametrize(
    ("one", "two"), [("h:/x", "h2:/x"), ("h:/x", "h:/xy"), ("h:/x", "ssh://h:2222/x/sub")]
)
def test_remote_destinations_apart_are_two_pairs(
    src: Path, tmp_path: Path, one: str, two: str
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    assert len(load(paths=[str(src), one, str(other), two]).pairs) == 2


def test_a_malformed_spec_is_one_line_and_exit_2(src: Path, tmp_path: Path) -> None:
    result = run_cli(str(src), "ssh://h:99999/x", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "pylsyncd: error: DST argument 'ssh://h:99999/x' has port 99999: "
        "give a port from 1 to 65535"
    ]


def test_ssh_missing_is_exit_2_at_start(src: Path, tmp_path: Path) -> None:
    # A PATH with rsync and sh but no ssh.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("rsync", "sh"):
        os.symlink(f"/usr/bin/{tool}", bin_dir / tool)
    result = run_cli(str(src), "h:/x", cwd=tmp_path, env={"PATH": str(bin_dir)})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(
        "pylsyncd: error: a remote destination needs ssh, which is not on PATH"
    )
    assert len(lines) == 1, lines


@pytest.mark.parametrize(
    ("given", "expected"), [(None, "python3"), ("/usr/bin/python3.11", "/usr/bin/python3.11"),
                            ("off", None), ("none", None)],
)  # fmt: skip
def test_remote_python_names_one_command_or_off(
    src: Path, given: str | None, expected: str | None
) -> None:
    env = {} if given is None else {"REMOTE_PYTHON": given}
    (pair,) = load(env, paths=[str(src), "h:/x"]).pairs
    assert pair.remote_python == expected


def test_a_remote_python_of_two_words_is_one_line_and_exit_2(src: Path, tmp_path: Path) -> None:
    before = sorted(tmp_path.rglob("*"))
    result = run_cli(str(src), "h:/x", "--remote-python", "python3 -S", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "pylsyncd: error: --remote-python='python3 -S' is not one command: give the remote's "
        "Python 3 as a name or a path (python3, /usr/bin/python3), or off"
    ]
    assert sorted(tmp_path.rglob("*")) == before  # nothing touched
