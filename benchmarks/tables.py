"""What every section of the benchmark page shares: the daemons' names and markdown tables."""

from __future__ import annotations

from typing import Any

Results = dict[str, Any]

PEER_NAMES = {
    "pylsyncd-direct": "pylsyncd direct",
    "pylsyncd-rsync": "pylsyncd rsync",
    "lsyncd-direct": "lsyncd direct",
    "lsyncd-rsync": "lsyncd rsync",
}
OURS = ("pylsyncd-direct", "pylsyncd-rsync")
LSYNCD = ("lsyncd-direct", "lsyncd-rsync")


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines, then a blank one."""

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    return [row(header), row(["---"] * len(header)), *(row(cells) for cells in rows), ""]


def met_text(met: bool | None) -> str:
    """A target's cell: met, missed (in bold), or - when not measured."""
    return {None: "-", True: "met", False: "**missed**"}[met]


# A 1-minute load average at or above this before a run: other work shared the machine.
_BUSY_LOAD = 0.5


def load_text(before: float) -> str:
    """What the load average before a run says about the machine, for a group's header."""
    return "other work ran beside it" if before >= _BUSY_LOAD else "nothing else running"
