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
