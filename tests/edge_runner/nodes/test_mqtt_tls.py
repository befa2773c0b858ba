"""MQTT over TLS and with password logins, against a private Mosquitto per test (TLS listener
with certificates generated here, optionally requiring client certificates; or a password
file). The shared broker on 1883 is never touched."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge_runner.testing import FlowHarness
from tests.edge_runner.connections.certs import PASSPHRASE, Pki, make_pki
from tests.edge_runner.connections.peers import Mosquitto

# Outside `make test-fast`: a private Mosquitto per test.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]
CAP = {"id": "cap", "type": "helper"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def topic() -> str:
    return f"manifold-tls/{uuid.uuid4().hex[:10]}"


def start_broker(tmp_path: Path, **options: Any) -> Iterator[Mosquitto]:
    broker = Mosquitto(folder=tmp_path / "broker", **options)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    yield from start_broker(tmp_path, tls=pki)


@pytest.fixture
def mutual_broker(tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    yield from start_broker(tmp_path, tls=pki, require_certificate=True)


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    yield from start_broker(tmp_path, users={"olivia": "correct horse"})


def tls_node(**fields: Any) -> dict[str, Any]:
    return {"id": "tls", "type": "tls-config", "name": "", **fields}


def broker(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": "bk",
        "type": "mqtt-broker",
        "broker": "127.0.0.1",
        "port": str(port),
        "usetls": True,
        "tls": "tls",
        "protocolVersion": "4",
        "reconnectPeriod": "100",
        "reconnectMaxPeriod": "1000",
        **extra,
    }


def round_trip(topic: str) -> list[dict[str, Any]]:
    """mqtt out publishes what it receives; mqtt in on the same broker hands it to ``cap``."""
    return [
        {"id": "in", "type": "mqtt in", "topic": topic, "qos": "1", "broker": "bk"}
        | {"datatype": "utf8", "wires": [["cap"]]},
        {"id": "out", "type": "mqtt out", "topic": topic, "qos": "1", "broker": "bk"},
        CAP,
    ]


def texts(h: FlowHarness, node_id: str) -> list[str]:
    return [s.get("text", "") for s in h.statuses(node_id)]


async def wait_text(h: FlowHarness, node_id: str, text: str, within: float = 5) -> None:
    await h.until(lambda: text in texts(h, node_id), within, f"{node_id} status {text!r}")


def peer_context(pki: Pki, client: bool = False) -> ssl.SSLContext:
    """How an independent, correctly configured client reaches the TLS broker."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    if client:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


async def peer_messages(port: int, pki: Pki, topic: str, seconds: float) -> list[bytes]:
    """Everything a trusted subscriber sees on ``topic`` for ``seconds``."""
    got: list[bytes] = []
    async with aiomqtt.Client("127.0.0.1", port, tls_context=peer_context(pki, True)) as client:
        await client.subscribe(topic, 1)
        with_deadline = time.monotonic() + seconds
        while (left := with_deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):
                    message = await anext(aiter(client.messages))
            except TimeoutError:
                break
            got.append(bytes(message.payload))
    return got


async def test_round_trip_over_tls_trusting_the_ca_file(
    tls_broker: Mosquitto, pki: Pki, topic: str
) -> None:
    flow = [tls_node(ca=str(pki.ca)), broker(tls_broker.port), *round_trip(topic)]
    async with FlowHarness(flow) as h:
        await wait_text(h, "in", "connected")
        h.receive("out", {"payload": "over tls"})
        msgs = await h.wait("cap", 1, timeout=5)
        assert texts(h, "bk") == ["connected"]
    assert msgs[0]["payload"] == "over tls"
    assert not any(s.get("fill") == "red" for s in h.statuses("tls"))


async def test_mutual_tls_with_uploaded_pem_credentials(
    mutual_broker: Mosquitto, pki: Pki, topic: str
) -> None:
    creds = {
        "cadata": pki.text(pki.ca),
        "certdata": pki.text(pki.client_cert),
        "keydata": pki.text(pki.client_key),
    }
    flow = [
        tls_node(certname="client.pem", keyname="client.key", caname="ca.pem", credentials=creds),
        broker(mutual_broker.port),
        *round_trip(topic),
    ]
    async with FlowHarness(flow) as h:
        await wait_text(h, "in", "connected")
        h.receive("out", {"payload": "mutual"})
        msgs = await h.wait("cap", 1, timeout=5)
    assert msgs[0]["payload"] == "mutual"
    # the broker saw a TLS client presenting a certificate (no anonymous plain connection)
    assert mutual_broker.log_lines("New client connected")


async def test_mutual_tls_with_an_encrypted_key_and_its_passphrase(
    mutual_broker: Mosquitto, pki: Pki, topic: str
) -> None:
    flow = [
        tls_node(
            cert=str(pki.client_cert),
            key=str(pki.client_key_encrypted),
            ca=str(pki.ca),
            credentials={"passphrase": PASSPHRASE},
        ),
        broker(mutual_broker.port),
        *round_trip(topic),
    ]
    async with FlowHarness(flow) as h:
        await wait_text(h, "in", "connected")
        h.receive("out", {"payload": "encrypted key"})
        assert (await h.wait("cap", 1, timeout=5))[0]["payload"] == "encrypted key"


async def test_mutual_tls_with_a_pfx_bundle(mutual_broker: Mosquitto, pki: Pki, topic: str) -> None:
    # the bundle carries the CA too: no separate CA file is needed
    flow = [
        tls_node(certType="pfx", p12=str(pki.client_p12), credentials={"passphrase": PASSPHRASE}),
        broker(mutual_broker.port),
        *round_trip(topic),
    ]
    async with FlowHarness(flow) as h:
        await wait_text(h, "in", "connected")
        h.receive("out", {"payload": "pfx"})
        assert (await h.wait("cap", 1, timeout=5))[0]["payload"] == "pfx"


async def test_wrong_ca_turns_red_with_certificate_verify_failed_and_sends_nothing(
    tls_broker: Mosquitto, pki: Pki, topic: str
) -> None:
    flow = [tls_node(ca=str(pki.other_ca)), broker(tls_broker.port), *round_trip(topic)]
    watcher = asyncio.ensure_future(peer_messages(tls_broker.port, pki, topic, 2.5))
    async with FlowHarness(flow) as h:
        await wait_text(h, "bk", "certificate verify failed")
        h.receive("out", {"payload": "must not leave"})
        got = await watcher
        statuses = {n: texts(h, n) for n in ("bk", "in", "out")}
        failure = h.node("bk").connection.failure  # type: ignore[attr-defined]  # broker node
    assert got == []
    assert statuses["bk"] == ["certificate verify failed"]
    assert statuses["in"][-1] == "certificate verify failed"
    # mqtt out keeps the message for later instead of losing it
    assert statuses["out"][-1] == "certificate verify failed, queued 1 (dropped 0)"
    assert "self-signed certificate in certificate chain" in str(failure)
    assert "cap" not in h.messages


async def test_verifyservercert_false_connects_despite_an_untrusted_certificate(
    tls_broker: Mosquitto, pki: Pki, topic: str
) -> None:
    flow = [
        tls_node(ca=str(pki.other_ca), verifyservercert=False),
        broker(tls_broker.port),
        *round_trip(topic),
    ]
    async with FlowHarness(flow) as h:
        await wait_text(h, "in", "connected")
        h.receive("out", {"payload": "unverified"})
        assert (await h.wait("cap", 1, timeout=5))[0]["payload"] == "unverified"


async def test_servername_is_the_name_checked_against_the_certificate(
    tls_broker: Mosquitto, pki: Pki, topic: str
) -> None:
    # the certificate names broker.test (and 127.0.0.1); the runner dials 127.0.0.1 either way
    good = [tls_node(ca=str(pki.ca), servername="broker.test"), broker(tls_broker.port)]
    async with FlowHarness([*good, *round_trip(topic)]) as h:
        await wait_text(h, "in", "connected")
    bad = [tls_node(ca=str(pki.ca), servername="plc.test"), broker(tls_broker.port)]
    async with FlowHarness(bad) as h:
        await wait_text(h, "bk", "certificate verify failed")
        failure = str(h.node("bk").connection.failure)  # type: ignore[attr-defined]  # Node base type; the config node defines it
    assert "Hostname mismatch" in failure
    assert "plc.test" in failure


async def test_missing_client_certificate_is_reported_not_left_connecting(
    mutual_broker: Mosquitto, pki: Pki, topic: str
) -> None:
    flow = [tls_node(ca=str(pki.ca)), broker(mutual_broker.port), *round_trip(topic)]
    started = time.monotonic()
    async with FlowHarness(flow) as h:
        await wait_text(h, "bk", "client certificate rejected")
        took = time.monotonic() - started
        assert texts(h, "in")[-1] == "client certificate rejected"
    assert took < 3, f"took {took:.2f} s to notice the refused client certificate"


async def test_a_client_certificate_from_another_ca_is_rejected(
    mutual_broker: Mosquitto, pki: Pki
) -> None:
    flow = [
        tls_node(ca=str(pki.ca), cert=str(pki.other_client_cert), key=str(pki.other_client_key)),
        broker(mutual_broker.port),
    ]
    async with FlowHarness(flow) as h:
        await wait_text(h, "bk", "client certificate rejected")


async def test_username_and_password_from_credentials(
    password_broker: Mosquitto, topic: str
) -> None:
    creds = {"user": "olivia", "password": "correct horse"}
    flow = [
        broker(password_broker.port, usetls=False, tls="", credentials=creds),
        *round_trip(topic),
    ]
    async with FlowHarness(flow) as h:
        await wait_text(h, "in", "connected")
        h.receive("out", {"payload": "logged in"})
        assert (await h.wait("cap", 1, timeout=5))[0]["payload"] == "logged in"
    # the password never reaches statuses, logs or the deployed flow
    assert "correct horse" not in repr(h.events)
    assert "correct horse" not in repr(h.engine.flows)


async def test_wrong_password_is_not_authorised_and_retries_slowly(
    password_broker: Mosquitto,
) -> None:
    creds = {"user": "olivia", "password": "wrong"}
    flow = [broker(password_broker.port, usetls=False, tls="", credentials=creds)]
    async with FlowHarness(flow) as h:
        await wait_text(h, "bk", "not authorised")
        await asyncio.sleep(2.2)
        statuses = texts(h, "bk")
    attempts = len(password_broker.log_lines("not authorised"))
    # a doubling backoff from 100 ms would have tried 5 times by now; a refused login waits
    # the slow end (1 s) between attempts
    print(f"login attempts in ~2.3 s after a refusal: {attempts}")
    assert 2 <= attempts <= 4
    assert statuses == ["not authorised"]  # red once, no flapping
