"""PostgreSQL historian on psycopg 3 (async): a TimescaleDB hypertable when the extension is
installed in the database, a plain table with the same columns otherwise.

Failures are classified once, here: anything that means "cannot reach the server now"
(connection refused or lost, timeouts) is ``HistorianUnavailableError`` and the writer spools;
everything else is ``HistorianError``."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from edge_runner.historian.base import (
    MAX_ROWS,
    HistorianError,
    HistorianUnavailableError,
    Point,
    QueryWindow,
    check_table,
)

log = logging.getLogger("edge_runner.historian")
OPERATION_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000.0)


class PostgresHistorian:
    def __init__(
        self, conninfo: str, table: str = "historian", timeout: float = OPERATION_TIMEOUT
    ) -> None:
        self.conninfo = conninfo
        self.table = check_table(table)
        self.timeout = timeout
        self.hypertable = False
        self._conn: Any = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    async def connect(self) -> None:
        import psycopg
        from psycopg import sql

        if self.connected:
            return
        try:
            async with asyncio.timeout(self.timeout):
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                )
                try:
                    await self._ensure_schema(conn, sql)
                except BaseException:
                    await conn.close()
                    raise
        except Exception as exc:
            raise self._classify(exc) from None
        self._conn = conn

    async def _ensure_schema(self, conn: Any, sql: Any) -> None:
        table = sql.Identifier(self.table)
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (time timestamptz NOT NULL, tag text NOT NULL, "
                "value double precision, text_value text, quality text NOT NULL, "
                "unit text NOT NULL, source text NOT NULL, site text NOT NULL, line text NOT NULL,"
                " machine text NOT NULL, PRIMARY KEY (tag, time))"
            ).format(table)
        )
        cur = await conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        if await cur.fetchone() is not None:
            await conn.execute(
                "SELECT create_hypertable(%s, 'time', if_not_exists => TRUE, migrate_data => TRUE)",
                (self.table,),
            )
            self.hypertable = True

    async def write(self, points: list[Point]) -> None:
        from psycopg import sql

        await self.connect()
        query = sql.SQL(
            "INSERT INTO {} (time, tag, value, text_value, quality, unit, source, site, line, "
            "machine) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (tag, time) DO NOTHING"
        ).format(sql.Identifier(self.table))
        rows = [
            (
                _ts(p.ts),
                p.tag,
                p.value,
                p.text,
                p.quality,
                p.unit,
                p.source,
                p.site,
                p.line,
                p.machine,
            )
            for p in points
        ]
        try:
            async with asyncio.timeout(self.timeout):
                # one transaction per batch: a batch is stored completely or not at all
                async with self._conn.transaction(), self._conn.cursor() as cur:
                    await cur.executemany(query, rows)
        except Exception as exc:
            raise await self._fail(exc) from None

    async def rows(self, window: QueryWindow) -> list[Point]:
        from psycopg import sql

        await self.connect()
        query = sql.SQL(
            "SELECT tag, time, value, text_value, quality, unit, source, site, line, machine "
            "FROM {} WHERE tag = %s AND time >= %s AND time <= %s ORDER BY time LIMIT %s"
        ).format(sql.Identifier(self.table))
        args = (window.tag, _ts(window.start), _ts(window.end), min(window.limit, MAX_ROWS))
        try:
            async with asyncio.timeout(self.timeout):
                cur = await self._conn.execute(query, args)
                found = await cur.fetchall()
        except Exception as exc:
            raise await self._fail(exc) from None
        return [
            Point(tag, _ms(time), value, text, quality, unit, source, site, line, machine)
            for tag, time, value, text, quality, unit, source, site, line, machine in found
        ]

    async def _fail(self, exc: Exception) -> HistorianError:
        error = self._classify(exc)
        if isinstance(error, HistorianUnavailableError):
            await self.close()
        return error

    @staticmethod
    def _classify(exc: Exception) -> HistorianError:
        import psycopg

        if isinstance(exc, HistorianError):
            return exc
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(
            exc, (psycopg.OperationalError, psycopg.InterfaceError, OSError, TimeoutError)
        ):
            return HistorianUnavailableError(f"PostgreSQL unreachable: {text}")
        return HistorianError(f"PostgreSQL: {text}")

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                async with asyncio.timeout(2):
                    await conn.close()
            except Exception as exc:  # closing a dead connection may fail; it is gone anyway
                log.debug("closing the PostgreSQL connection failed: %s", exc)
