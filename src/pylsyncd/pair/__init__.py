"""One source -> destination pair: it takes a `Transfer` and a `Watcher` and keeps the mirror.

- `fan_out`: one source's watcher and coalescer, handing each batch to its targets.
- `target`: one destination: initial sync, applying batches, the final flush (`Target`),
  from its own queue (`target_queue`); `destination_root` repairs a replaced destination.
- `mirror`: one source and one target as a unit (`Pair`), as tests drive it.
- `pending`: the events gathered between two batches (`PendingEvents`).
- `source_watch`: the only owner of the watcher: the reader thread, the out-of-watches
  fallback, the pause while the source is gone and the fresh watch when it is back.
- `retry`: backoff, and a failure said once when it starts and once when it clears.
- `progress`: the batch counts for the log and the status file, initial sync progress lines.
"""

from __future__ import annotations

from pylsyncd.pair.mirror import Pair
from pylsyncd.pair.pending import PendingEvents
from pylsyncd.pair.source_watch import WatcherFactory
from pylsyncd.pair.target import pair_name

__all__ = ["Pair", "PendingEvents", "WatcherFactory", "pair_name"]
