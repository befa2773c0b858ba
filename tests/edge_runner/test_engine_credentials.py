"""Credentials: apart from flows, AES-GCM at rest, Node-RED's format readable, never leaked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from edge_runner.contract import REGISTRY, Category, Msg, Node, NodeConfig, NodeSpec
from edge_runner.runtime.credentials import (
    CredentialError,
    CredentialStore,
    decrypt,
    encrypt,
    encrypt_node_red,
)
from edge_runner.runtime.engine import DeployError, Engine
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

CANARY = "canary-7f3a9e-secret"
# Written by Node.js with Node-RED's own algorithm (aes-256-ctr, key = sha256(secret),
# "$" = hex(iv) + base64(ciphertext)) for secret "my-secret".
NODE_RED_FILE = {
    "$": "00112233445566778899aabbccddeeffplQ+iZikc1j/vrz1Pik5PSF/J+W1PDGZp9XpzDBbRl"
    "/zRM7Kq70q54XOWNJwJ812Ny2X"
}


class LoginConfig(NodeConfig):
    user_field: str = ""


class LoginNode(Node):
    """Test node with credentials; reports them in status and errors (which must be redacted)."""

    SPEC: ClassVar[NodeSpec] = NodeSpec(
        type="test-login",
        version=1,
        category=Category.NETWORK,
        inputs=1,
        outputs=1,
        help="t",
        credentials=("user", "password"),
    )
    Config: ClassVar[type[NodeConfig]] = LoginConfig

    def on_message(self, msg: Msg) -> None:
        password = self.rt.credentials.get("password")
        self.status("red", "ring", f"login failed for {password}")
        msg["user"] = self.rt.credentials.get("user")
        msg["has_password"] = bool(password)
        self.rt.send(msg)
        raise ValueError(f"rejected password {password}")


if REGISTRY.get("test-login") is None:
    REGISTRY.add(LoginNode)


def flow(creds: dict[str, Any] | None) -> list[dict[str, Any]]:
    node: dict[str, Any] = {"id": "login", "type": "test-login", "z": "t1", "wires": [["cap"]]}
    if creds is not None:
        node["credentials"] = creds
    return [{"id": "t1", "type": "tab"}, node, {"id": "cap", "type": "helper", "z": "t1"}]


async def test_node_red_credential_file_is_read_with_its_secret() -> None:
    assert decrypt("my-secret", NODE_RED_FILE) == {
        "mqtt1": {"user": "olivia", "password": "p@ss wörd"}
    }
    with pytest.raises(CredentialError, match="wrong credential secret"):
        decrypt("not-the-secret", NODE_RED_FILE)
    round_trip = encrypt_node_red("s", {"n": {"a": "b"}})
    assert decrypt("s", round_trip) == {"n": {"a": "b"}}
    assert decrypt(None, {"n1": {"password": "plain"}}) == {"n1": {"password": "plain"}}


async def test_our_format_is_aead_and_tampering_or_a_wrong_secret_fails_hard() -> None:
    stored = encrypt("k1", {"n": {"password": CANARY}})
    assert CANARY not in json.dumps(stored)
    assert decrypt("k1", stored) == {"n": {"password": CANARY}}
    with pytest.raises(CredentialError, match="wrong credential secret or tampered"):
        decrypt("k2", stored)
    data = bytearray(__import__("base64").b64decode(stored["data"]))
    data[0] ^= 1
    tampered = {**stored, "data": __import__("base64").b64encode(bytes(data)).decode()}
    with pytest.raises(CredentialError, match="tampered"):
        decrypt("k1", tampered)
    with pytest.raises(CredentialError, match="no credential secret"):
        decrypt(None, stored)


async def test_deploy_stores_credentials_apart_encrypted_and_redacted(tmp_path: Path) -> None:
    store = CredentialStore.in_userdir(tmp_path, "userdir-secret")
    engine = Engine(credentials=store)
    async with FlowHarness(flow({"user": "olivia", "password": CANARY}), engine=engine) as h:
        h.receive("login", {})
        (out,) = await h.wait("cap")
        assert out == {"_msgid": out["_msgid"], "user": "olivia", "has_password": True}
        assert all("credentials" not in n for n in h.engine.flows)
        leaked = json.dumps(h.events)
        assert CANARY not in leaked
        assert "***" in leaked
        on_disk = (tmp_path / "flows_cred.json").read_text()
        assert CANARY not in on_disk
        # the editor sends "__PWRD__" for an unchanged password
        await h.engine.deploy(flow({"user": "olivia", "password": "__PWRD__"}), "nodes")
        assert h.engine.nodes["login"].credentials["password"] == CANARY
    reloaded = CredentialStore.in_userdir(tmp_path, "userdir-secret")
    assert reloaded.get("login") == {"user": "olivia", "password": CANARY}
    with pytest.raises(CredentialError):
        CredentialStore.in_userdir(tmp_path, "another-secret")


async def test_credentials_without_a_secret_reject_the_deploy(tmp_path: Path) -> None:
    engine = Engine(credentials=CredentialStore.in_userdir(tmp_path, None))
    with pytest.raises(DeployError, match="no credential secret"):
        await engine.deploy(flow({"password": CANARY}))
    assert not (tmp_path / "flows_cred.json").exists()


async def test_removed_nodes_lose_their_credentials_and_blank_values_delete() -> None:
    engine = Engine()
    await engine.deploy(flow({"user": "u", "password": "p"}))
    await engine.deploy(flow({"password": ""}), "nodes")
    assert engine.credentials.get("login") == {"user": "u"}
    await engine.deploy([{"id": "t1", "type": "tab"}], "nodes")
    assert engine.credentials.creds == {}
    await engine.stop()
