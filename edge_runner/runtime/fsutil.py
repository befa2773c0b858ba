"""Moved to ``edge_runner.lib.fsutil`` (connections use it, and lib sits below the runtime).

Kept as an alias while branches written against the old path are merged."""

from edge_runner.lib.fsutil import atomic_write_bytes as atomic_write_bytes
from edge_runner.lib.fsutil import fsync_dir as fsync_dir
