"""A second process for a full sync of the direct backend.

Copying a tree is mostly system calls, each wrapped in a little Python, and Python runs one
thread at a time: two threads were slower than one. Two processes are not. The pair's process
hands whole subtrees to a helper process (`python -m pylsyncd.transfer.helper`) while it syncs
other subtrees itself; the subtrees are disjoint, so the two never touch the same directory's
entries. Each side uses the same code (`TreeSync.sync_tree`) with the same safety: nothing here
is a second implementation.

The protocol is JSON lines: the settings, then one subtree path per line on the helper's stdin;
one report per subtree on its stdout. Its log lines go to the daemon's stderr.

- `protocol`: the messages, for both sides;
- `client`: the helper process, seen from the pair's process (starts, feeds and stops it);
- `__main__`: the helper process itself. Nothing imports it: it is only ever run, so it is
  loaded once, and it imports none of the client side.
"""
