"""The runner's SQL historian: timestamped tag values in a local SQLite file or PostgreSQL
(a TimescaleDB hypertable when the extension exists), with store and forward for PostgreSQL.

Used by the ``historian-write`` and ``historian-query`` nodes; imports nothing heavy at module
load (psycopg is imported when a PostgreSQL backend connects)."""

from edge_runner.historian.base import (
    AGGREGATES,
    Backend,
    HistorianError,
    HistorianUnavailableError,
    Point,
    QueryWindow,
    points_from_payload,
)

__all__ = [
    "AGGREGATES",
    "Backend",
    "HistorianError",
    "HistorianUnavailableError",
    "Point",
    "QueryWindow",
    "points_from_payload",
]
