"""historian-write / historian-query against local SQLite and the real PostgreSQL on
127.0.0.1:5432 (own test database), including an outage through a TCP proxy that is cut and
restored: values are spooled, then sent in order, nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.runtime.paths import RunnerPaths
from edge_runner.testing import FlowHarness
from tests.edge_runner.connections.peers import free_port
from tests.edge_runner.sqlite_files import sqlite_file, table_names

# Outside `make test-fast`: the real PostgreSQL.
pytestmark = pytest.mark.slow

BASE = 1_772_368_000_000  # a fixed epoch ms so queries are deterministic


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can be cut (listener closed, live connections aborted)
    and restored on the same port: a network outage without touching the server."""

    def __init__(self, target_port: int = 5432) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers.difference_update({writer, up_writer})

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def restore(self) -> None:
        await self.start()


@pytest.fixture
async def database() -> AsyncIterator[str]:
    name = f"manifold_hist_{uuid.uuid4().hex[:10]}"
    admin = await psycopg.AsyncConnection.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
    )
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def proxy() -> AsyncIterator[CuttableProxy]:
    peer = CuttableProxy()
    await peer.start()
    yield peer
    await peer.cut()


@pytest.fixture
def userdir(tmp_path: Path) -> Path:
    """The runner's data directory; harnesses get it as ``paths=RunnerPaths(userdir)``."""
    return tmp_path


async def pg_rows(database: str, table: str = "historian") -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(
        f"host=127.0.0.1 port=5432 user=postgres dbname={database}"
    ) as conn:
        cur = await conn.execute(
            f"SELECT tag, (extract(epoch from time) * 1000)::bigint, value, text_value, "  # noqa: S608  # fixed test table
            f"quality, unit, site FROM {table} ORDER BY time"
        )
        return await cur.fetchall()


def write_flow(**fields: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": "hw",
            "type": "historian-write",
            "batchSize": 5,
            "flushInterval": 0.05,
            "retryInterval": 0.1,
            **fields,
        },
        {
            "id": "hq",
            "type": "historian-query",
            "wires": [["out"]],
            **{
                k: v
                for k, v in fields.items()
                if k in {"backend", "file", "host", "port", "database", "table"}
            },
        },
        {"id": "out", "type": "helper"},
        {"id": "c", "type": "catch", "scope": None, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]


def reading(tag: str, i: int, value: Any = None) -> dict[str, Any]:
    return {
        "tag": tag,
        "value": float(i) if value is None else value,
        "unit": "mm/s",
        "quality": "good",
        "timestamp": BASE + i * 1000,
        "asset": {"site": "plant-7", "line": "L2", "machine": "m3"},
    }


async def query(h: FlowHarness, count: int, **payload: Any) -> Any:
    h.receive("hq", {"payload": payload})
    return (await h.wait("out", count, timeout=5))[-1]


# ---------------------------------------------------------------------------- SQLite


async def test_sqlite_round_trip_with_aggregates(userdir: Path) -> None:
    async with FlowHarness(write_flow(), paths=RunnerPaths(userdir)) as h:
        for i in range(10):
            h.receive("hw", {"payload": reading("vib", i)})
        h.receive("hw", {"payload": reading("state", 3, value="running")})
        h.receive("hw", {"payload": {"a": 1, "b": True}, "timestamp": BASE})
        writer: Any = h.node("hw")
        await h.until(lambda: writer.written >= 13, 5, "13 points written")
        window = {"tag": "vib", "from": BASE, "to": BASE + 9000}
        rows = (await query(h, 1, **window))["payload"]
        assert [r["value"] for r in rows] == [float(i) for i in range(10)]
        assert rows[0] == {
            "tag": "vib",
            "timestamp": BASE,
            "value": 0.0,
            "quality": "good",
            "unit": "mm/s",
        }
        assert (await query(h, 2, aggregate="avg", **window))["payload"] == 4.5
        assert (await query(h, 3, aggregate="count", **window))["payload"] == 10
        assert (await query(h, 4, aggregate="last", **window))["payload"] == 9.0
        buckets = (await query(h, 5, aggregate="max", bucket=5, **window))["payload"]
        assert buckets == [
            {"timestamp": BASE, "value": 4.0},
            {"timestamp": BASE + 5000, "value": 9.0},
        ]
        state = await query(h, 6, tag="state", **{"from": BASE, "to": BASE + 9000})
        assert state["payload"][0]["value"] == "running"
        booleans = await query(h, 7, tag="b", **{"from": BASE - 1, "to": BASE + 1})
        assert booleans["payload"][0]["value"] == 1.0
        assert state["query"]["tag"] == "state"
    with sqlite3.connect(userdir / "historian" / "historian.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM historian").fetchone()[0] == 13


async def test_sqlite_ignores_a_repeated_point_and_reports_bad_input(userdir: Path) -> None:
    async with FlowHarness(write_flow(), paths=RunnerPaths(userdir)) as h:
        h.receive("hw", {"payload": reading("x", 1)})
        h.receive("hw", {"payload": reading("x", 1, value=99.0)})  # same tag and time
        h.receive("hw", {"payload": {"value": 1}})  # no tag, no topic
        h.receive("hw", {"payload": {"tag": "x", "value": 1, "timestamp": "soon"}})
        h.receive("hq", {"payload": {"tag": "x", "aggregate": "median"}})
        h.receive("hq", {"payload": {"tag": "x", "from": BASE + 10, "to": BASE}})
        errs = await h.wait("errs", 4)
        texts = sorted(e["error"]["message"] for e in errs)
        assert texts == sorted(
            [
                "reading {'value': 1} has no tag",
                "timestamp 'soon' is not ISO 8601 nor a number",
                "aggregate 'median' is not one of avg, min, max, sum, count, first, last",
                "the window starts after it ends (from > to)",
            ]
        )
        writer: Any = h.node("hw")
        await h.until(lambda: writer.written >= 2, 5, "written")
        rows = (await query(h, 1, tag="x", **{"from": BASE, "to": BASE + 5000}))["payload"]
        assert [r["value"] for r in rows] == [1.0]


async def test_values_waiting_for_a_flush_are_written_on_stop(userdir: Path) -> None:
    async with FlowHarness(
        write_flow(batchSize=1000, flushInterval=600), paths=RunnerPaths(userdir)
    ) as h:
        h.receive("hw", {"payload": [reading("late", i) for i in range(3)]})
        await h.quiet(0.05)
        assert h.node("hw").written == 0  # type: ignore[attr-defined]  # white-box: still buffered
    with sqlite3.connect(userdir / "historian" / "historian.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM historian").fetchone()[0] == 3


async def test_config_is_checked_at_deploy(userdir: Path) -> None:
    for fields, expected in (
        ({"table": "points; drop table x"}, "table name"),
        ({"file": "../../etc/passwd"}, "inside the historian directory"),
        ({"batchSize": 0}, "batchSize"),
        ({"backend": "oracle"}, "backend"),
    ):
        with pytest.raises(DeployError) as info:
            async with FlowHarness(write_flow(**fields), paths=RunnerPaths(userdir)):
                pass
        assert expected in str(info.value)


# ------------------------------------------------------------------------- PostgreSQL


def pg(database: str, port: int, **fields: Any) -> dict[str, Any]:
    return {
        "backend": "postgres",
        "host": "127.0.0.1",
        "port": port,
        "database": database,
        **fields,
    }


async def test_postgres_plain_table_and_query(userdir: Path, database: str) -> None:
    async with FlowHarness(write_flow(**pg(database, 5432)), paths=RunnerPaths(userdir)) as h:
        h.receive("hw", {"payload": [reading("vib", i) for i in range(7)]})
        writer: Any = h.node("hw")
        await h.until(lambda: writer.written >= 7, 5, "written")
        assert writer.backend.hypertable is False  # no timescaledb in this database
        assert h.statuses("hw")[-1] == {"fill": "green", "shape": "dot", "text": "connected"}
        result = await query(h, 1, tag="vib", aggregate="sum", **{"from": BASE, "to": BASE + 6000})
        assert result["payload"] == 21.0
    rows = await pg_rows(database)
    assert rows[0] == ("vib", BASE, 0.0, None, "good", "mm/s", "plant-7")
    assert len(rows) == 7


async def test_outage_spools_in_order_and_recovers_without_loss_or_duplicates(
    userdir: Path, database: str, proxy: CuttableProxy
) -> None:
    async with FlowHarness(write_flow(**pg(database, proxy.port)), paths=RunnerPaths(userdir)) as h:
        node: Any = h.node("hw")
        h.receive("hw", {"payload": [reading("vib", i) for i in range(5)]})
        await h.until(lambda: node.written >= 5, 5, "first batch written")
        await proxy.cut()
        for i in range(5, 40):
            h.receive("hw", {"payload": reading("vib", i)})
        # every point passes through the outbox: wait for the failed write, not the count
        await h.until(lambda: node.spool.count >= 35 and not node.up, 15, "35 points spooled")
        red = [s for s in h.statuses("hw") if s.get("fill") == "red"]
        assert red[-1]["text"] == "unreachable · 35 spooled"
        warnings = [e for e in h.logs(30) if "unreachable" in str(e.get("msg"))]
        assert len(warnings) == 1  # logged once per outage, not per retry
        await asyncio.sleep(0.5)  # several failed retries while cut
        await proxy.restore()
        h.receive("hw", {"payload": reading("vib", 40)})  # new data queues behind the spool
        await h.until(lambda: node.spool.count == 0 and node.written >= 41, 15, "spool drained")
        assert h.statuses("hw")[-1] == {"fill": "green", "shape": "dot", "text": "connected"}
    rows = await pg_rows(database)
    assert [r[1] for r in rows] == [BASE + i * 1000 for i in range(41)]
    assert [r[2] for r in rows] == [float(i) for i in range(41)]


async def test_spool_survives_a_restart_and_is_sent_on_recovery(
    userdir: Path, database: str, proxy: CuttableProxy
) -> None:
    flow = write_flow(**pg(database, proxy.port))
    await proxy.cut()
    async with FlowHarness(flow, paths=RunnerPaths(userdir)) as h:
        node: Any = h.node("hw")
        assert h.statuses("hw")[0]["fill"] == "red"
        h.receive("hw", {"payload": [reading("t", i) for i in range(12)]})
        await h.until(lambda: node.spool.count == 12, 5, "spooled")
    assert (userdir / "historian" / "spool-hw.sqlite3").exists()
    await proxy.restore()
    async with FlowHarness(flow, paths=RunnerPaths(userdir)) as h:
        node = h.node("hw")
        await h.until(lambda: node.spool.count == 0, 10, "drained after restart")
    rows = await pg_rows(database)
    assert [r[2] for r in rows] == [float(i) for i in range(12)]


async def test_spool_overflow_drops_the_oldest_and_says_so(
    userdir: Path, database: str, proxy: CuttableProxy
) -> None:
    await proxy.cut()
    async with FlowHarness(
        write_flow(**pg(database, proxy.port, maxSpool=10)), paths=RunnerPaths(userdir)
    ) as h:
        node: Any = h.node("hw")
        h.receive("hw", {"payload": [reading("o", i) for i in range(25)]})
        await h.until(lambda: node.spool.dropped == 15, 5, "overflow")
        assert h.statuses("hw")[-1]["text"] == "unreachable · 10 spooled · 15 dropped"
        await proxy.restore()
        await h.until(lambda: node.spool.count == 0 and node.up, 10, "drained")
    rows = await pg_rows(database)
    assert [r[2] for r in rows] == [float(i) for i in range(15, 25)]


async def test_query_reports_an_unreachable_database(
    userdir: Path, database: str, proxy: CuttableProxy
) -> None:
    async with FlowHarness(write_flow(**pg(database, proxy.port)), paths=RunnerPaths(userdir)) as h:
        await proxy.cut()
        h.receive("hq", {"payload": {"tag": "x", "last": 10}})
        (err,) = await h.wait("errs", 1, timeout=10)
        assert err["error"]["message"].startswith("PostgreSQL unreachable:")
        assert h.statuses("hq")[-1]["fill"] == "red"
        await proxy.restore()
        h.receive("hq", {"payload": {"tag": "x", "last": 10}})
        (ok,) = await h.wait("out", 1, timeout=10)
        assert ok["payload"] == []
        assert h.statuses("hq")[-1] == {"fill": "green", "shape": "dot", "text": "0 rows"}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_write_throughput_figure(userdir: Path, database: str, backend: str) -> None:
    """Prints points/s from message to committed row (batches of 500) for each backend."""
    fields = pg(database, 5432) if backend == "postgres" else {}
    total = 5000
    async with FlowHarness(
        write_flow(**fields, batchSize=500, flushInterval=0.01), paths=RunnerPaths(userdir)
    ) as h:
        writer: Any = h.node("hw")
        start = asyncio.get_running_loop().time()
        for i in range(total):
            h.receive("hw", {"payload": reading("fast", i)})
        await h.until(lambda: writer.written >= total, 30, f"{total} written")
        elapsed = asyncio.get_running_loop().time() - start
    print(f"\nhistorian-write {backend}: {total / elapsed:,.0f} points/s ({total} points)")
    if backend == "postgres":
        assert len(await pg_rows(database)) == total
    else:
        with sqlite3.connect(userdir / "historian" / "historian.sqlite3") as db:
            assert db.execute("SELECT count(*) FROM historian").fetchone()[0] == total


async def test_a_spool_left_by_a_runner_before_the_outbox_is_sent(
    userdir: Path, database: str
) -> None:
    path = sqlite_file(  # the schema of the Spool the outbox replaced
        userdir / "historian" / "spool-hw.sqlite3",
        "CREATE TABLE spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, point TEXT NOT NULL)",
        "INSERT INTO spool (point) VALUES (?)",
        [(f'{{"tag": "old", "ts": {BASE + i}, "value": {i}.0}}',) for i in range(3)],
    )
    async with FlowHarness(write_flow(**pg(database, 5432)), paths=RunnerPaths(userdir)) as h:
        node: Any = h.node("hw")
        await h.until(lambda: node.written == 3 and node.spool.count == 0, 10, "legacy sent")
    rows = await pg_rows(database)
    assert [(r[0], r[1], r[2]) for r in rows] == [("old", BASE + i, float(i)) for i in range(3)]
    assert "spool" not in table_names(path)
