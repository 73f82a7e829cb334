"""The pylsyncd image for the tests, built with the repository's Dockerfile and nothing else.

No image registry is reachable here, so the base (`debian:bookworm-slim`) is made with debootstrap
from the Debian mirror apt already uses, trimmed like the official slim image, and imported; the
tarball is cached. pip inside the build reads a PEP 503 index served on 127.0.0.1 from a
wheelhouse of the build requirements (the Dockerfile's `ARG PIP_INDEX_URL`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from docker_engine import Engine

BASE_IMAGE = "debian:bookworm-slim"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_TIMEOUT = 900.0
BUILD_TIMEOUT = 1200.0

# What debuerreotype's "slim" variant keeps out of the image, so the local base, and what the
# Dockerfile installs on it, weigh about what they weigh on the real one.
SLIM_DPKG_CONFIG = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
"""
SLIM_APT_CONFIG = """\
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT::AutoRemove::SuggestsImportant "false";
"""
SLIM_REMOVED = ("usr/share/groff", "usr/share/info", "usr/share/linda", "usr/share/locale",
                "usr/share/man", "usr/share/lintian/overrides", "var/lib/apt/lists",
                "var/cache/apt")  # fmt: skip


def ensure_base_image(engine: Engine, cache_dir: Path) -> None:
    """Import debian:bookworm-slim into the engine unless it has it (debootstrap once, cached)."""
    if engine.docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        return
    tarball = cache_dir / f"{SUITE}-slim.tar"
    with _cache_lock(tarball):
        if not tarball.exists():
            _debootstrap_tarball(tarball)
    engine.docker(
        "import", "--change", 'CMD ["bash"]', str(tarball), BASE_IMAGE, timeout=DEBOOTSTRAP_TIMEOUT
    )


@contextlib.contextmanager
def _cache_lock(path: Path) -> Iterator[None]:
    """Hold `path`'s lock file: two test runs at once must not make the same cache entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


def _debootstrap_tarball(tarball: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise AssertionError(
            f"{BASE_IMAGE} is not in the engine and debootstrap is missing to make it: "
            "`./dev test` as root installs it (or `docker pull` it where a registry is reachable)"
        )
    rootfs = tarball.with_name(tarball.name + ".rootfs")
    partial = tarball.with_name(tarball.name + ".partial")
    shutil.rmtree(rootfs, ignore_errors=True)
    stanzas = _debian_sources()
    try:
        subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(rootfs), _mirror(stanzas)],
            capture_output=True,
            text=True,
            timeout=DEBOOTSTRAP_TIMEOUT,
            check=True,
        )
        _slim(rootfs, stanzas)
        subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."],
            capture_output=True,
            timeout=DEBOOTSTRAP_TIMEOUT,
            check=True,
        )
        partial.rename(tarball)
    except subprocess.CalledProcessError as error:
        raise AssertionError(f"{error.cmd[0]} failed:\n{error.stdout}\n{error.stderr}") from None
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
        partial.unlink(missing_ok=True)


def _debian_sources() -> list[str]:
    """The host's deb822 stanzas for this suite (and its -updates, -security), comments dropped."""
    stanzas: list[str] = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            lines = [line for line in stanza.splitlines() if line and not line.startswith("#")]
            suites = next((line.split()[1:] for line in lines if line.startswith("Suites:")), [])
            if any(suite.split("-")[0] == SUITE for suite in suites):
                stanzas.append("\n".join(lines))
    return stanzas


def _mirror(stanzas: list[str]) -> str:
    """The first URI of the stanza that carries the suite itself."""
    for stanza in stanzas:
        fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line)
        if SUITE in fields.get("Suites", "").split() and fields.get("URIs", "").split():
            return fields["URIs"].split()[0]
    return DEFAULT_MIRROR


def _slim(rootfs: Path, stanzas: list[str]) -> None:
    """Trim the tree the way the official slim image is trimmed; apt uses the host's mirrors."""
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker").write_text(SLIM_DPKG_CONFIG)
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(SLIM_APT_CONFIG)
    if stanzas:
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_text("\n\n".join(stanzas) + "\n")
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    for relative in SLIM_REMOVED:
        directory = rootfs / relative
        if directory.is_dir():
            shutil.rmtree(directory)
            directory.mkdir()
    (rootfs / "var/lib/apt/lists/partial").mkdir()
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True)
    for package_docs in (rootfs / "usr/share/doc").iterdir():
        if package_docs.is_dir() and not package_docs.is_symlink():
            for entry in package_docs.iterdir():
                if entry.name != "copyright":
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


# -- Python packages the build needs, served on loopback ----------------------------------------


def build_requirements(repo: Path) -> list[str]:
    """pyproject.toml's build-system requirements and the daemon's dependencies: what pip
    inside the build must find."""
    pyproject: dict[str, Any] = tomllib.loads((repo / "pyproject.toml").read_text())
    requires: list[str] = pyproject["build-system"]["requires"]
    return [*requires, *pyproject["project"]["dependencies"]]


def ensure_wheelhouse(requirements: list[str], cache_dir: Path) -> Path:
    """A PEP 503 tree (`simple/NAME/FILE`) holding wheels for `requirements`; cached."""
    root = cache_dir / "wheelhouse"
    with _cache_lock(root):
        _fill_wheelhouse(root, requirements)
    return root


def _fill_wheelhouse(root: Path, requirements: list[str]) -> None:
    stamp = root / "requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return
    shutil.rmtree(root, ignore_errors=True)
    downloads = root / "downloads"
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
         "--dest", str(downloads), *requirements],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if download.returncode != 0:
        raise AssertionError(f"pip download {' '.join(requirements)} failed:\n{download.stderr}")
    for wheel in downloads.glob("*.whl"):
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()  # PEP 503 name
        (root / "simple" / project).mkdir(parents=True, exist_ok=True)
        wheel.rename(root / "simple" / project / wheel.name)
    downloads.rmdir()
    stamp.write_text(wanted)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not worth a line in the test output."""


@contextlib.contextmanager
def package_index(wheelhouse: Path) -> Iterator[str]:
    """Serve `wheelhouse` on 127.0.0.1; yields the index URL (`http://127.0.0.1:PORT/simple/`)."""
    handler = functools.partial(_QuietHandler, directory=str(wheelhouse))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, name="package-index", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
        finally:
            server.shutdown()
            thread.join(timeout=10)


# -- the image ----------------------------------------------------------------------------------


def build_image(engine: Engine, repo: Path, tag: str, cache_dir: Path) -> None:
    """`docker build` the repository's Dockerfile as `tag`, as a user would, pip on loopback.

    The legacy builder with `--network host` lets pip reach the index on the host's loopback; apt
    inside the build reaches the Debian mirror the same way.
    """
    ensure_base_image(engine, cache_dir)
    wheelhouse = ensure_wheelhouse(build_requirements(repo), cache_dir)
    previous = engine.docker("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    started = int(time.time())
    with package_index(wheelhouse) as index_url:
        engine.run(
            ["docker", "build", "--network", "host", "--build-arg", f"PIP_INDEX_URL={index_url}",
             "--tag", tag, str(repo)],
            env=engine.env(DOCKER_BUILDKIT="0"), timeout=BUILD_TIMEOUT,
        )  # fmt: skip
    current = engine.docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    old_id = previous.stdout.strip()
    if previous.returncode == 0 and old_id != current:
        # The previous build is untagged now: drop it, or a cached engine grows with every run.
        engine.docker("image", "rm", old_id, check=False)
    if engine.private:
        # Earlier builds' first stages are dangling now; this build's stays as the build cache.
        engine.docker("image", "prune", "--force", "--filter", f"until={started}", check=False)
