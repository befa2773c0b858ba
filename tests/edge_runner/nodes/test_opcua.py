"""OPC-UA nodes against a real asyncua server on 127.0.0.1 (one per test session): read, typed
write, subscribe with deadband, browse, bad input, security and logins."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path
from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.runtime.paths import RunnerPaths
from edge_runner.testing import FlowHarness
from tests.edge_runner.opcua_server import PASSWORD, PlantServer, free_port, shared_server

# Outside `make test-fast`: a real OPC-UA server.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

GREEN = {"fill": "green", "shape": "dot", "text": "connected"}


@pytest.fixture
def runner_dir(tmp_path: Path) -> Path:
    """The runner's data directory; harnesses get it as ``paths=RunnerPaths(runner_dir)``."""
    return tmp_path / "runner"


@pytest.fixture
def plant(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> PlantServer:
    return shared_server(
        tmp_path_factory.getbasetemp() / "opcua-server-pki", request.config.add_cleanup
    )


def endpoint(url: str, **fields: Any) -> dict[str, Any]:
    return {"id": "ep", "type": "opcua-endpoint", "endpoint": url, **fields}


def node(
    node_id: str, type_: str, wires: list[list[str]] | None = None, **fields: Any
) -> dict[str, Any]:
    return {"id": node_id, "type": type_, "endpoint": "ep", "wires": wires or [["cap"]], **fields}


CAPTURE: list[dict[str, Any]] = [
    {"id": "cap", "type": "helper"},
    {"id": "c", "type": "catch", "scope": None, "wires": [["errs"]]},
    {"id": "errs", "type": "helper"},
]


async def connected(h: FlowHarness, node_id: str) -> None:
    await h.until(lambda: h.statuses(node_id)[-1:] == [GREEN], 15, f"{node_id} connected")


# ------------------------------------------------------------------------------ read


async def test_read_one_variable_with_status_and_timestamps(plant: PlantServer) -> None:
    plant.set_value("Temperature", 21.5)
    flow = [
        endpoint(plant.url),
        node("r", "opcua-read", nodeId="ns=2;s=Plant.Temperature"),
        *CAPTURE,
    ]
    async with FlowHarness(flow) as h:
        await connected(h, "r")
        h.receive("r", {"payload": "go"})
        (msg,) = await h.wait("cap", 1, 5)
        assert msg["payload"] == 21.5
        assert msg["statusCode"] == "Good"
        assert msg["dataType"] == "Double"
        assert msg["topic"] == "ns=2;s=Plant.Temperature"
        stamp = dt.datetime.fromisoformat(msg["sourceTimestamp"].replace("Z", "+00:00"))
        assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 3600
        assert [s["fill"] for s in h.statuses("r")] == ["yellow", "green"]


async def test_read_node_ids_from_topic_or_a_list_in_the_payload(plant: PlantServer) -> None:
    plant.set_value("Name", "press-7")
    plant.set_value("Counter", 41)
    flow = [endpoint(plant.url), node("r", "opcua-read"), *CAPTURE]
    async with FlowHarness(flow) as h:
        await connected(h, "r")
        h.receive("r", {"topic": "ns=2;s=Plant.Name"})
        h.receive("r", {"payload": ["ns=2;s=Plant.Counter", "ns=2;s=Plant.Nope"]})
        one, many = await h.wait("cap", 2, 5)
        assert one["payload"] == "press-7"
        assert one["dataType"] == "String"
        counter, nope = many["payload"]
        assert counter["nodeId"] == "ns=2;s=Plant.Counter"
        assert counter["value"] == 41
        assert counter["dataType"] == "Int32"
        assert nope["statusCode"] == "BadNodeIdUnknown"
        assert nope["value"] is None


async def test_read_errors_reach_catch_with_the_message(plant: PlantServer) -> None:
    flow = [endpoint(plant.url), node("r", "opcua-read"), *CAPTURE]
    async with FlowHarness(flow) as h:
        await connected(h, "r")
        h.receive("r", {"topic": "ns=2;s=Plant.Missing", "payload": 1})
        h.receive("r", {"topic": "Plant.Temperature", "payload": 2})
        h.receive("r", {"payload": {"not": "an id"}})
        errors = await h.wait("errs", 3, 5)
        texts = [e["error"]["message"] for e in errors]
        assert "BadNodeIdUnknown" in texts[0]
        assert errors[0]["payload"] == 1
        assert "invalid node id 'Plant.Temperature'" in texts[1]
        assert "no node id" in texts[2]
        assert "cap" not in h.messages


# ------------------------------------------------------------------------------ write


@pytest.mark.parametrize(
    ("name", "data_type", "payload", "expected"),
    [
        ("Small", "Int16", -1234, -1234),
        ("Small", "Int16", "77", 77),
        ("Word", "UInt16", 65535, 65535),
        ("DWord", "UInt32", 4_000_000_000, 4_000_000_000),
        ("Big", "Int64", 2**40, 2**40),
        ("Counter", "Int32", 12.0, 12),
        ("Running", "Boolean", "true", True),
        ("Running", "Boolean", 0, False),
        ("Setpoint", "Float", "2.5", 2.5),
        ("Temperature", "Double", 99.25, 99.25),
        ("Name", "String", 42, "42"),
        ("Stamp", "DateTime", "2025-06-01T12:00:00Z", dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)),
        ("Stamp", "DateTime", 0, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
    ],
)
async def test_write_typed_values(
    plant: PlantServer, name: str, data_type: str, payload: Any, expected: Any
) -> None:
    flow = [
        endpoint(plant.url),
        node("w", "opcua-write", nodeId=f"ns=2;s=Plant.{name}", dataType=data_type),
        *CAPTURE,
    ]
    async with FlowHarness(flow) as h:
        await connected(h, "w")
        h.receive("w", {"payload": payload})
        (msg,) = await h.wait("cap", 1, 5)
        assert msg["statusCode"] == "Good"
        assert msg["payload"] == payload
        got = plant.value(name)
        if isinstance(expected, dt.datetime):
            got = got.replace(tzinfo=dt.UTC) if got.tzinfo is None else got
        assert got == expected


async def test_write_auto_type_asks_the_server_or_takes_msg_data_type(plant: PlantServer) -> None:
    flow = [endpoint(plant.url), node("w", "opcua-write"), *CAPTURE]
    async with FlowHarness(flow) as h:
        await connected(h, "w")
        h.receive("w", {"topic": "ns=2;s=Plant.Word", "payload": "321"})
        h.receive("w", {"topic": "ns=2;s=Plant.Small", "payload": 5, "dataType": "Int16"})
        await h.wait("cap", 2, 5)
        assert plant.value("Word") == 321
        assert plant.value("Small") == 5


@pytest.mark.parametrize(
    ("data_type", "payload", "reason"),
    [
        ("Int16", 70000, "70000 is out of range for Int16 (-32768..32767)"),
        ("Int16", 1.5, "not a whole number"),
        ("UInt16", -1, "out of range for UInt16"),
        ("Double", "abc", "cannot write 'abc' as Double: not a number"),
        ("Boolean", "maybe", "cannot write 'maybe' as Boolean"),
        ("DateTime", "yesterday", "cannot write 'yesterday' as DateTime"),
        ("Float", 1e39, "out of range for Float"),
    ],
)
async def test_bad_payloads_are_refused_and_the_value_is_unchanged(
    plant: PlantServer, data_type: str, payload: Any, reason: str
) -> None:
    plant.set_value("Small", 11)
    flow = [
        endpoint(plant.url),
        node("w", "opcua-write", nodeId="ns=2;s=Plant.Small", dataType=data_type),
        *CAPTURE,
    ]
    async with FlowHarness(flow) as h:
        await connected(h, "w")
        h.receive("w", {"payload": payload})
        (err,) = await h.wait("errs", 1, 5)
        assert reason in err["error"]["message"]
        assert "cap" not in h.messages
        assert plant.value("Small") == 11


async def test_the_server_refusing_a_type_is_reported(plant: PlantServer) -> None:
    plant.set_value("Small", 3)
    flow = [
        endpoint(plant.url),
        node("w", "opcua-write", nodeId="ns=2;s=Plant.Small", dataType="Double"),
        *CAPTURE,
    ]
    async with FlowHarness(flow) as h:
        await connected(h, "w")
        h.receive("w", {"payload": 1.0})
        (err,) = await h.wait("errs", 1, 5)
        assert "write: BadTypeMismatch" in err["error"]["message"]
        assert plant.value("Small") == 3


# ------------------------------------------------------------------------------ subscribe


async def test_subscribe_sends_the_current_value_then_changes(plant: PlantServer) -> None:
    plant.set_value("Counter", 1)
    flow = [
        endpoint(plant.url),
        node(
            "s",
            "opcua-subscribe",
            nodeIds=["ns=2;s=Plant.Counter"],
            interval=50,
            samplingInterval=20,
        ),
        {"id": "cap", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        (first,) = await h.wait("cap", 1, 10)
        assert first["payload"] == 1
        assert first["topic"] == "ns=2;s=Plant.Counter"
        assert first["statusCode"] == "Good"
        assert first["dataType"] == "Int32"
        plant.set_value("Counter", 2)
        plant.set_value("Counter", 3)
        await h.until(lambda: h.messages["cap"][-1]["payload"] == 3, 5, "counter 3")
        assert h.statuses("s")[-1] == GREEN


async def test_nodes_with_one_interval_share_one_subscription_and_deadband_filters(
    plant: PlantServer,
) -> None:
    plant.set_value("Temperature", 20.0)
    plant.set_value("Setpoint", 1.0)
    flow = [
        endpoint(plant.url),
        node(
            "s1",
            "opcua-subscribe",
            wires=[["cap1"]],
            nodeIds="ns=2;s=Plant.Temperature",
            interval=50,
            samplingInterval=10,
            deadbandType="absolute",
            deadbandValue=1.0,
        ),
        node(
            "s2",
            "opcua-subscribe",
            wires=[["cap2"]],
            nodeIds=["ns=2;s=Plant.Setpoint"],
            interval=50,
            queueSize=5,
        ),
        {"id": "cap1", "type": "helper"},
        {"id": "cap2", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        await h.wait("cap1", 1, 10)
        await h.wait("cap2", 1, 10)
        conn = h.node("s1").connection  # type: ignore[attr-defined]  # OpcUaSubscribe
        assert list(conn._groups) == [50]
        assert len(conn._groups[50].items) == 2
        for small in (20.3, 20.6, 20.9):  # within the deadband of 1.0 from 20.0
            plant.set_value("Temperature", small)
        plant.set_value("Temperature", 22.0)
        await h.until(lambda: h.messages["cap1"][-1]["payload"] == 22.0, 5, "22.0")
        assert [m["payload"] for m in h.messages["cap1"]] == [20.0, 22.0]


async def test_subscribe_to_an_unknown_node_turns_red_and_raises(plant: PlantServer) -> None:
    flow = [
        endpoint(plant.url),
        node("s", "opcua-subscribe", wires=[["cap"]], nodeIds=["ns=2;s=Plant.Ghost"]),
        *CAPTURE[1:],
        {"id": "cap", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        (err,) = await h.wait("errs", 1, 10)
        assert "BadNodeIdUnknown" in err["error"]["message"]
        await h.until(lambda: h.statuses("s")[-1]["fill"] == "red", 5)
        assert "BadNodeIdUnknown" in h.statuses("s")[-1]["text"]


# ------------------------------------------------------------------------------ browse


async def test_browse_lists_children_with_class_and_data_type(plant: PlantServer) -> None:
    flow = [endpoint(plant.url), node("b", "opcua-browse"), *CAPTURE]
    async with FlowHarness(flow) as h:
        await connected(h, "b")
        h.receive("b", {"topic": "ns=2;s=Plant"})
        h.receive("b", {})
        plant_children, objects = await h.wait("cap", 2, 5)
        by_name = {c["displayName"]: c for c in plant_children["payload"]}
        assert by_name["Temperature"] == {
            "nodeId": "ns=2;s=Plant.Temperature",
            "browseName": "2:Temperature",
            "displayName": "Temperature",
            "nodeClass": "Variable",
            "dataType": "Double",
        }
        assert by_name["Stamp"]["dataType"] == "DateTime"
        assert by_name["Line"]["nodeClass"] == "Object"
        assert by_name["Line"]["dataType"] is None
        assert objects["topic"] == "i=85"
        assert "ns=2;s=Plant" in {c["nodeId"] for c in objects["payload"]}
        h.receive("b", {"topic": "ns=2;s=Nowhere"})
        (err,) = await h.wait("errs", 1, 5)
        assert "BadNodeIdUnknown" in err["error"]["message"]


# ------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"endpoint": ""}, "endpoint URL is required"),
        ({"endpoint": "http://plc:4840"}, "must be an opc.tcp:// URL"),
        ({"securityPolicy": "Basic256Sha256"}, "cannot be used with mode None"),
        ({"securityMode": "Sign"}, "security policy None cannot be used with mode Sign"),
        ({"securityPolicy": "Basic128Rsa15", "securityMode": "Sign"}, "securityPolicy"),
        ({"authType": "kerberos"}, "authType"),
        ({"timeout": 0}, "timeout"),
    ],
)
async def test_bad_endpoint_config_is_rejected_at_deploy(
    fields: dict[str, Any], reason: str
) -> None:
    flow = [{**endpoint("opc.tcp://127.0.0.1:4840"), **fields}]
    with pytest.raises(DeployError) as info:
        async with FlowHarness(flow):
            pass
    assert any(reason in e["error"] for e in info.value.errors), info.value.errors


async def test_bad_node_ids_in_config_are_rejected_at_deploy() -> None:
    flow = [
        endpoint("opc.tcp://127.0.0.1:4840"),
        node("r", "opcua-read", nodeId="Plant.Temperature"),
        node("s", "opcua-subscribe", nodeIds=[]),
        {"id": "cap", "type": "helper"},
    ]
    with pytest.raises(DeployError) as info:
        async with FlowHarness(flow):
            pass
    errors = {e["id"]: e["error"] for e in info.value.errors}
    assert "invalid node id 'Plant.Temperature'" in errors["r"]
    assert "at least one node id" in errors["s"]


async def test_contrib_opcua_endpoint_fields_are_read(plant: PlantServer) -> None:
    flow = [
        {
            "id": "ep",
            "type": "opcua-endpoint",
            "endpoint": plant.url,
            "secpol": "None",
            "secmode": "None",
            "none": True,
            "login": False,
            "usercert": False,
            "usercertificate": "",
            "userprivatekey": "",
        },
        node("r", "opcua-read", nodeId="ns=2;s=Plant.Name"),
        *CAPTURE,
    ]
    async with FlowHarness(flow) as h:
        await connected(h, "r")


async def test_a_node_without_its_endpoint_does_not_start() -> None:
    flow = [node("r", "opcua-read", endpoint="nope", nodeId="i=2258"), *CAPTURE]
    async with FlowHarness(flow) as h:
        assert h.statuses("r")[-1]["fill"] == "red"
        assert "no opcua-endpoint config node 'nope'" in h.statuses("r")[-1]["text"]


# ------------------------------------------------------------------------------ outage


async def test_unreachable_server_is_red_once_and_reads_fail_fast(runner_dir: Path) -> None:
    url = f"opc.tcp://127.0.0.1:{free_port()}/"
    flow = [
        endpoint(url, reconnectMaxDelay=0.2),
        node("r", "opcua-read", nodeId="i=2258"),
        *CAPTURE,
    ]
    async with FlowHarness(flow, paths=RunnerPaths(runner_dir)) as h:
        await h.until(
            lambda: h.statuses("r")[-1:] != [] and h.statuses("r")[-1]["fill"] == "red", 10
        )
        await h.quiet(0.8)  # several retries fail meanwhile
        assert [s["fill"] for s in h.statuses("r")] == ["yellow", "red"]
        assert "connection refused" in h.statuses("r")[-1]["text"]
        h.receive("r", {"payload": 1})
        (err,) = await h.wait("errs", 1, 2)
        assert f"not connected to {url}" in err["error"]["message"]


# ------------------------------------------------------------------------------ security


async def test_basic256sha256_sign_and_encrypt_with_a_username_login(
    plant: PlantServer, runner_dir: Path
) -> None:
    plant.set_value("Name", "secure")
    flow = [
        endpoint(
            plant.url,
            securityPolicy="Basic256Sha256",
            securityMode="SignAndEncrypt",
            authType="username",
            credentials={"user": "olivia", "password": PASSWORD},
        ),
        node("r", "opcua-read", nodeId="ns=2;s=Plant.Name"),
        *CAPTURE,
    ]
    async with FlowHarness(flow, paths=RunnerPaths(runner_dir)) as h:
        await connected(h, "r")
        conn = h.node("r").connection  # type: ignore[attr-defined]  # OpcUaRead
        policy = conn.client.security_policy
        assert policy.URI.endswith("#Basic256Sha256")
        assert policy.Mode.name == "SignAndEncrypt"
        h.receive("r", {})
        (msg,) = await h.wait("cap", 1, 5)
        assert msg["payload"] == "secure"
        assert plant.users.seen[-1] == "olivia"
    cert = runner_dir / "certificates" / "opcua" / "client-cert.der"
    key = runner_dir / "certificates" / "opcua" / "client-key.pem"
    assert cert.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    from cryptography import x509

    sans = (
        x509.load_der_x509_certificate(cert.read_bytes())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert sans.get_values_for_type(x509.UniformResourceIdentifier)[0].startswith(
        "urn:manifold:edge-runner:"
    )


async def test_a_wrong_password_needs_a_user_fix(plant: PlantServer) -> None:
    flow = [
        endpoint(
            plant.url, authType="username", credentials={"user": "olivia", "password": "wrong"}
        ),
        node("r", "opcua-read", nodeId="ns=2;s=Plant.Name"),
        *CAPTURE,
    ]
    async with FlowHarness(flow) as h:
        await h.until(
            lambda: h.statuses("r")[-1:] != [] and h.statuses("r")[-1]["fill"] == "red", 10
        )
        assert "BadUserAccessDenied" in h.statuses("r")[-1]["text"]
        conn = h.node("r").connection  # type: ignore[attr-defined]  # OpcUaRead
        assert type(conn.failure).__name__ == "NeedsUserFix"


async def test_certificate_login_with_the_runners_certificate(
    plant: PlantServer, runner_dir: Path
) -> None:
    from edge_runner.connections.opcua import client_certificate

    cert, _ = client_certificate(runner_dir / "certificates" / "opcua")
    plant.trusted_user_certs.append(cert.read_bytes())
    flow = [
        endpoint(
            plant.url, securityPolicy="Basic256Sha256", securityMode="Sign", authType="certificate"
        ),
        node("r", "opcua-read", nodeId="ns=2;s=Plant.Name"),
        *CAPTURE,
    ]
    try:
        async with FlowHarness(flow, paths=RunnerPaths(runner_dir)) as h:
            await connected(h, "r")
            assert plant.users.seen[-1] == "certificate"
    finally:
        plant.trusted_user_certs.clear()
