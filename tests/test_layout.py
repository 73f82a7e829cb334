"""The package's layout: no import cycle, modules and classes of a readable size, and a helper
process whose entry point is loaded once and needs none of the client side.

Imports are read from the source (every `import`, also those inside functions), so a cycle is
found whether or not a test happens to import its modules in the order that breaks. The parent
packages that Python loads on the way to a module (`pylsyncd.config` for `pylsyncd.config.types`)
are not counted as imported: a submodule never needs its package's names to be loaded, and a
package's `__init__` importing its own modules is how a package exports them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pylsyncd
from helpers import clean_environment
from pylsyncd.transfer.helper.protocol import Settings

PACKAGE = Path(pylsyncd.__file__).parent
TRANSFER = "pylsyncd.transfer"
HELPER_ENTRY = "pylsyncd.transfer.helper"  # run as `python -m pylsyncd.transfer.helper`
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 200


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["pylsyncd", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `path` names in its imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: a relative import"
            assert node.module is not None
            targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        names.update(target for target in targets if target in known)
    return names


def cycles() -> list[list[str]]:
    """Import cycles between the package's modules."""
    known = modules()
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
    found: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the path, then "done"

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                found.append([*path[path.index(other) :], other])
            elif other not in state:
                visit(other, [*path, other])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return found


def test_no_import_cycle() -> None:
    assert cycles() == []


def test_nothing_imports_the_helper_entry_point() -> None:
    """Only ever run: imported by anything, `python -m` would load its file a second time."""
    known = modules()
    entry = f"{HELPER_ENTRY}.__main__"
    assert entry in known
    importers = [name for name, path in known.items() if entry in imports(path, known)]
    assert importers == []


def test_modules_and_classes_stay_small() -> None:
    too_big: list[str] = []
    for name, path in modules().items():
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    too_big.append(f"{name}.{node.name}: {lines} lines")
    assert too_big == []


def test_the_helper_process_loads_its_entry_once_and_no_client_code(tmp_path: Path) -> None:
    """Run as the pair's process runs it, with `-X importtime` listing every module imported."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "file").write_text("synced by the helper")
    settings = Settings(str(src), str(dst), [], True, None, None, False, [], 30, 16 << 20)
    # The settings, one subtree (the root), then the end of stdin: the helper reports and exits.
    stdin = json.dumps(asdict(settings)) + "\n" + json.dumps("") + "\n"
    env = {**clean_environment(), "PYTHONPATH": str(PACKAGE.parent)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", HELPER_ENTRY],
        input=stdin.encode(),
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    replies = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert replies[0] == "ready"
    assert replies[1]["path"] == "" and replies[1]["copied"] == 1, replies
    assert (dst / "file").read_text() == "synced by the helper"
    imported = [
        line.rpartition("|")[2].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    ours = [name for name in imported if name.startswith("pylsyncd")]
    assert len(ours) == len(set(ours)), ours
    # Run as __main__, never imported again under its own name.
    assert f"{HELPER_ENTRY}.__main__" not in ours
    # The server needs the tree sync only, not the side that starts helpers.
    client_side = {
        f"{TRANSFER}.helper.client",
        f"{TRANSFER}.full_sync",
        f"{TRANSFER}.direct",
        f"{TRANSFER}.children",
    }
    assert client_side.isdisjoint(ours), ours
