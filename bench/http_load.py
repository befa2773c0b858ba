"""HTTP load against one or more running web processes, as a reverse proxy would send it.

    python bench/http_load.py --url http://127.0.0.1:8001 --url http://127.0.0.1:8002 \\
        --token "$TOKEN" --team acme --clients 50 --seconds 30 \\
        --database-url postgres://postgres@127.0.0.1:5432/manifold

Each client loops over the URLs in turn: nine authenticated reads (the team's applications) and
one write (a new application: transaction, audit row, websocket event) in ten requests. Requests
carry ``X-Forwarded-Proto: https`` like the TLS proxy of deploy/README.md. With
``--database-url`` the PostgreSQL backends of that database are sampled every 0.2 s
(``pg_stat_activity``) and the maximum is reported. Prints one summary line and a JSON line;
exits 1 if any request failed (any status but 2xx, or no answer within 30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psycopg


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)


async def client(
    session: aiohttp.ClientSession, urls: list[str], args: argparse.Namespace, tally: Tally
) -> None:
    headers = {"Authorization": f"Bearer {args.token}", "X-Forwarded-Proto": "https"}
    deadline = time.monotonic() + args.seconds
    number = 0
    while time.monotonic() < deadline:
        base = urls[number % len(urls)]
        collection = f"{base}/api/v1/teams/{args.team}/applications/"
        started = time.monotonic()
        try:
            if number % 10 == 9:
                slug = f"load-{secrets.token_hex(6)}"
                request = session.post(
                    collection, json={"name": slug, "slug": slug}, headers=headers
                )
            else:
                request = session.get(collection, headers=headers)
            async with request as response:
                await response.read()
                if not 200 <= response.status < 300:
                    tally.errors.append(f"{response.method} {response.url}: {response.status}")
        except (aiohttp.ClientError, TimeoutError) as error:
            tally.errors.append(f"{base}: {error!r}")
        tally.latencies.append(time.monotonic() - started)
        number += 1


async def sample_connections(database_url: str, stop: asyncio.Event, tally: Tally) -> None:
    name = psycopg.conninfo.conninfo_to_dict(database_url).get("dbname")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as watcher:
        while not stop.is_set():
            cursor = await watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                (name,),
            )
            row = await cursor.fetchone()
            tally.connections.append(int(row[0]) if row else 0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    stop = asyncio.Event()
    sampler = (
        asyncio.ensure_future(sample_connections(args.database_url, stop, tally))
        if args.database_url
        else None
    )
    limits = aiohttp.TCPConnector(limit=args.clients)
    timeout = aiohttp.ClientTimeout(total=30)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=limits, timeout=timeout) as session:
        await asyncio.gather(*(client(session, args.url, args, tally) for _ in range(args.clients)))
    elapsed = time.monotonic() - started
    stop.set()
    if sampler is not None:
        await sampler
    latencies = sorted(tally.latencies)
    return {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "processes": len(args.url),
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "errors": len(tally.errors),
        "first_errors": tally.errors[:5],
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_ms_p99": (
            round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1)
            if latencies
            else None
        ),
        "database_connections_max": max(tally.connections) if tally.connections else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", required=True, help="a web process base URL")
    parser.add_argument("--token", required=True, help="personal access token of a team member")
    parser.add_argument("--team", required=True, help="team slug")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--database-url", help="sample pg_stat_activity of this database")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    print(
        f"{result['requests']} requests in {result['seconds']} s from {result['clients']} clients "
        f"on {result['processes']} processes: {result['requests_per_second']} req/s, "
        f"{result['errors']} errors, p50 {result['latency_ms_p50']} ms, "
        f"p99 {result['latency_ms_p99']} ms, "
        f"database connections max {result['database_connections_max']}"
    )
    print(json.dumps(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
