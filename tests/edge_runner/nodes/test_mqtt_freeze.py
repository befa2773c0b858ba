"""RELIABILITY family 36: a frozen broker (SIGSTOP, the half-open link) while ``mqtt out``
publishes at ~200 msg/s, with and without a runner SIGKILL during the freeze: every message the
outbox took arrives (at least once, first arrivals in publishing order), none is lost.

A private Mosquitto with an unbounded per-client queue, so that the broker's own limit on what
it holds for a subscriber cannot be mistaken for a loss in the runner."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_runner.connections import mqtt
from edge_runner.nodes.mqtt_out import MqttOutNode
from edge_runner.runtime.paths import RunnerPaths
from edge_runner.testing import FlowHarness
from tests.edge_runner.connections.peers import (
    Mosquitto,
    Subscriber,
    SubscriberProcess,
    free_port,
)
from tests.edge_runner.looplag import LoopLag
from tests.edge_runner.nodes.test_mqtt import broker, connected, mqtt_out, status_texts

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]
RATE = 200.0  # messages per second
FREEZE = 12.0  # seconds the broker is stopped
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def frozen_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    peer = Mosquitto(
        free_port(), folder=tmp_path / "mosquitto", extra_config=("max_queued_messages 0",)
    )
    peer.start()
    yield peer
    peer.stop()


def outbox_of(h: FlowHarness) -> int:
    node = h.node("out")
    assert isinstance(node, MqttOutNode)
    return node.queue.count if node.queue is not None else 0


def figures(label: str, sent: int, sub: Subscriber, lost: int, **extra: Any) -> str:
    received = len(sub.payloads())
    distinct = len(sub.distinct())
    more = ", ".join(f"{k} {v}" for k, v in extra.items())
    return (
        f"\n{label}: sent {sent}, received {received} ({received - distinct} duplicates), "
        f"lost {lost}; {more}"
    )


async def test_frozen_broker_loses_no_message(frozen_broker: Mosquitto, tmp_path: Path) -> None:
    topic = f"manifold-test/{uuid.uuid4().hex[:12]}/freeze"
    sub = SubscriberProcess(
        frozen_broker.port, topic, f"sub-{uuid.uuid4().hex[:8]}", tmp_path / "received.txt"
    )
    await sub.start()
    sent: list[bytes] = []
    peak = 0
    try:
        async with FlowHarness([broker(frozen_broker.port), mqtt_out(topic)]) as h:
            await connected(h, "out")
            loop = asyncio.get_running_loop()
            async with LoopLag() as lag:
                start = loop.time()
                frozen_at = thawed_at = None
                while True:
                    now = loop.time() - start
                    if frozen_at is None and now >= 2:
                        frozen_broker.freeze()
                        frozen_at = now
                    elif thawed_at is None and frozen_at is not None and now >= 2 + FREEZE:
                        frozen_broker.thaw()
                        thawed_at = now
                    elif now >= 4 + FREEZE:
                        break
                    payload = f"m{len(sent)}".encode()
                    h.receive("out", {"payload": payload})
                    sent.append(payload)
                    peak = max(peak, outbox_of(h))
                    await asyncio.sleep(max(0.0, start + len(sent) / RATE - loop.time()))
            arrived = await sub.wait_distinct(len(sent), within=60)
            lost = len(set(sent) - set(arrived))
            print(figures("frozen broker", len(sent), sub, lost, peak_queued=peak, lag=lag))
            assert lost == 0
            assert arrived == sent  # first arrivals in publishing order
            texts = status_texts(h, "out")
            assert any(t.startswith("unavailable, queued ") for t in texts), texts
            await h.until(lambda: status_texts(h, "out")[-1] == "connected", 10, "drained")
            assert outbox_of(h) == 0
    finally:
        await sub.stop()


# ------------------------------------------------------------------ a runner killed mid-freeze

COUNTER = """n = context.get("n") or 0
context.set("n", n + 1)
msg["payload"] = f"{env.get('FREEZE_RUN')}-{n}"
return msg"""


def runner_flow(port: int, topic: str) -> list[dict[str, Any]]:
    return [
        broker(port, reconnectMaxPeriod="1000"),
        {
            "id": "tick",
            "type": "inject",
            "repeat": str(1 / RATE),
            "crontab": "",
            "once": False,
            "onceDelay": 0.1,
            "topic": "",
            "payload": "",
            "payloadType": "date",
            "props": [{"p": "payload"}],
            "wires": [["count"]],
        },
        {
            "id": "count",
            "type": "python-function",
            "func": COUNTER,
            "outputs": 1,
            "wires": [["out"]],
        },
        mqtt_out(topic),
    ]


def start_runner(userdir: Path, run: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FREEZE_RUN": run,
        "EDGE_RUNNER_CREDENTIAL_SECRET": "freeze-secret",
    }
    with open(userdir.parent / f"runner-{run}.log", "ab") as log:
        return subprocess.Popen(  # returns at once; the runner runs alone
            [
                sys.executable,
                "-m",
                "edge_runner",
                "serve",
                "--port",
                str(free_port()),
                "--userdir",
                str(userdir),
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def queued_on_disk(userdir: Path) -> list[bytes]:
    """The payloads waiting in the runner's outbox file (read while no runner has it open)."""
    with sqlite3.connect(RunnerPaths(userdir).mqtt_queue / "out.sqlite3") as db:
        rows = db.execute("SELECT body FROM outbox ORDER BY id").fetchall()
    return [mqtt.decode_outgoing(bytes(body)).payload for (body,) in rows]


def numbers(payloads: list[bytes], run: str) -> set[int]:
    prefix = f"{run}-".encode()
    return {int(p[len(prefix) :]) for p in payloads if p.startswith(prefix)}


async def wait_for(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_runner_killed_during_a_freeze_loses_no_durable_message(
    frozen_broker: Mosquitto, tmp_path: Path
) -> None:
    """Run "a" is SIGKILLed 5 s into the freeze; run "b" starts from the same outbox while the
    broker is still frozen. Every message of "a" that reached the outbox's disk arrives; "b"
    stops gracefully and what it had not sent yet is still in the outbox."""
    topic = f"manifold-test/{uuid.uuid4().hex[:12]}/kill"
    userdir = tmp_path / "userdir"
    userdir.mkdir()
    (userdir / "flows.json").write_text(json.dumps(runner_flow(frozen_broker.port, topic)))
    sub = Subscriber(frozen_broker.port, topic, client_id=f"sub-{uuid.uuid4().hex[:8]}")
    await sub.start()
    runners: list[subprocess.Popen[bytes]] = []
    try:
        runners.append(start_runner(userdir, "a"))
        await wait_for(lambda: len(numbers(sub.payloads(), "a")) >= 200, 30, "run a publishing")
        frozen_broker.freeze()
        frozen_at = time.monotonic()
        await asyncio.sleep(5)
        os.killpg(runners[0].pid, signal.SIGKILL)
        runners[0].wait(10)
        durable_a = numbers(queued_on_disk(userdir), "a")
        runners.append(start_runner(userdir, "b"))
        await asyncio.sleep(max(0.0, frozen_at + FREEZE - time.monotonic()))
        frozen_broker.thaw()
        highest_a = max(durable_a | numbers(sub.payloads(), "a"))
        await wait_for(
            lambda: numbers(sub.payloads(), "a") >= set(range(highest_a + 1)),
            60,
            f"every durable message of run a (0..{highest_a})",
        )
        await wait_for(lambda: len(numbers(sub.payloads(), "b")) >= 400, 30, "run b publishing")
        runners[1].send_signal(signal.SIGTERM)
        runners[1].wait(20)
        await asyncio.sleep(1)  # the last acknowledged messages reach the subscriber
        received_a = numbers(sub.payloads(), "a")
        received_b = numbers(sub.payloads(), "b")
        left_b = numbers(queued_on_disk(userdir), "b")
        lost_a = set(range(highest_a + 1)) - received_a
        lost_b = set(range(max(received_b | left_b) + 1)) - received_b - left_b
        print(
            figures(
                "runner killed in the freeze",
                highest_a + 1 + len(received_b | left_b),
                sub,
                len(lost_a) + len(lost_b),
                run_a=f"{highest_a + 1} published, {len(durable_a)} waiting on disk at the kill",
                run_b=f"{len(received_b)} received, {len(left_b)} left queued at stop",
            )
        )
        assert not lost_a
        assert not lost_b
        assert received_a == set(range(highest_a + 1))  # nothing sent that was not durable
        for run in ("a", "b"):  # first arrivals in publishing order, across the kill too
            firsts = [n for p in sub.distinct() for n in numbers([p], run)]
            assert firsts == sorted(firsts), run
    finally:
        for proc in runners:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        await sub.stop()
