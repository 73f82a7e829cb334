"""What the benchmarks take from the test suite (tests/), imported rather than copied, so the
benchmark and the tests measure with the same server and the same oracle.

- `Sshd`: Debian's sshd on a free loopback port with generated keys (tests/sshd.py).
- `Churn`, `DIRECTORIES`, `content_of`: the two-sided churn and the last version it wrote of
  each path (tests/test_two_way_churn.py).
"""

from __future__ import annotations

import os
import sys

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
if TESTS not in sys.path:
    sys.path.append(TESTS)

# tests/ is on the path only from here on.
import sshd  # noqa: E402
from sshd import Sshd  # noqa: E402
from test_two_way_churn import DIRECTORIES, Churn  # noqa: E402
from test_two_way_churn import _content as content_of  # noqa: E402

__all__ = ["DIRECTORIES", "Churn", "Sshd", "content_of", "use_sshd_program"]


def use_sshd_program(path: str) -> None:
    """The program `Sshd.start` runs as sshd from now on, in this process (a wrapper)."""
    sshd.SSHD = path
