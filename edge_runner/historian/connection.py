"""Connection fields shared by ``historian-write`` and ``historian-query``, and the backend
they describe."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator

from edge_runner.contract import NodeApi, NodeConfig
from edge_runner.historian.base import check_table

CONNECTION_HELP = """### Connection
- **SQLite** (default): a local file under `<data dir>/historian/` (WAL mode), always
  available on the device.
- **PostgreSQL**: *host*, *port*, *database*, *user* and the *password* credential. The node
  creates the table if needed: a TimescaleDB hypertable when the `timescaledb` extension is
  installed in that database, else a plain table with the same columns
  `(time, tag, value, text_value, quality, unit, source, site, line, machine)`,
  key `(tag, time)`.
"""


class HistorianConnection(NodeConfig):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    file: str = "historian.sqlite3"
    host: str = "127.0.0.1"
    port: int = 5432
    database: str = "manifold"
    user: str = "postgres"
    table: str = "historian"

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return check_table(value)

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or not 0 < value < 65536:
            raise ValueError(f"port must be 1..65535, got {value!r}")
        return value

    @field_validator("file")
    @classmethod
    def _file(cls, value: str) -> str:
        if not value.strip() or value.startswith("/") or ".." in Path(value).parts:
            raise ValueError(
                f"file {value!r} must be a relative name inside the historian directory"
            )
        return value


def historian_root(rt: NodeApi) -> Path:
    """``<data dir>/historian`` (``RunnerPaths.historian``)."""
    return rt.paths.historian


def open_backend(cfg: HistorianConnection, engine: Any, password: str | None) -> Any:
    """A not yet connected backend for ``cfg``."""
    if cfg.backend == "sqlite":
        from edge_runner.historian.sqlite import SQLiteHistorian

        return SQLiteHistorian(historian_root(engine) / cfg.file, cfg.table)
    from psycopg.conninfo import make_conninfo

    from edge_runner.historian.postgres import PostgresHistorian

    params: dict[str, Any] = {
        "host": cfg.host,
        "port": cfg.port,
        "dbname": cfg.database,
        "user": cfg.user,
        "application_name": "manifold-edge-runner",
    }
    if password:
        params["password"] = password
    return PostgresHistorian(make_conninfo("", **params), cfg.table)
