"""The suite's own guard (conftest.no_leaks) fails a test that leaves a thread or a child behind."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

LEAKY_TESTS = """
import subprocess
import threading


def test_leaves_a_thread() -> None:
    stop = threading.Event()
    threading.Thread(target=stop.wait, args=(30,), name="forgotten", daemon=True).start()


def test_leaves_a_child() -> None:
    subprocess.Popen(["sleep", "30"])


KEPT = []


def test_leaves_a_zombie() -> None:
    KEPT.append(subprocess.Popen(["true"]))  # exits, and is never waited for


def test_cleans_up() -> None:
    process = subprocess.Popen(["true"])
    process.wait()
"""


def test_a_leaked_thread_child_or_zombie_fails_its_test(tmp_path: Path) -> None:
    tests = Path(__file__).parent
    for name in ("conftest.py", "helpers.py", "sshd.py"):  # conftest and what it imports
        shutil.copy(tests / name, tmp_path / name)
    (tmp_path / "test_leaky.py").write_text(LEAKY_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--rootdir", str(tmp_path), "-c", "/dev/null", str(tmp_path / "test_leaky.py")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "4 passed, 3 errors" in output, output  # the leaks fail at teardown
    assert "left behind: thread 'forgotten'" in output, output
    assert "child process" in output and "sleep 30" in output, output
    assert "zombie: never reaped" in output, output
