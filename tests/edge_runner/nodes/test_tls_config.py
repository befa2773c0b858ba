"""The tls-config node: every way of giving it material, every way that material can be wrong
(each with its own message), and its contexts used against a real TLS server on loopback."""

from __future__ import annotations

import asyncio
import base64
import ssl
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_runner.nodes.tls_config import TlsConfigNode
from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness
from tests.edge_runner.connections.certs import PASSPHRASE, Pki, make_pki

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def server(pki: Pki) -> AsyncIterator[tuple[int, list[Any]]]:
    """A TLS echo of the handshake: answers with the negotiated ALPN protocol and the client
    certificate's subject. Client certificates are optional; ALPN offers x-test."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    context.load_verify_locations(str(pki.ca))
    context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["x-test", "http/1.1"])
    seen: list[Any] = []
    names: list[str | None] = []

    def remember(_obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        names.append(name)  # returning None lets the handshake go on

    context.sni_callback = remember

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        seen.append((tls.selected_alpn_protocol(), tls.getpeercert(), names[-1]))
        writer.write(b"ok\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield port, seen


async def handshake(context: ssl.SSLContext, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    line = await reader.readline()
    writer.close()
    return line


def tls(**fields: Any) -> list[dict[str, Any]]:
    return [{"id": "tls", "type": "tls-config", **fields}]


def node(h: FlowHarness) -> TlsConfigNode:
    found = h.node("tls")
    assert isinstance(found, TlsConfigNode)
    return found


async def failure(flow: list[dict[str, Any]], env: dict[str, str] | None = None) -> str:
    """The error the tls node reported at start (and that its status shows)."""
    async with FlowHarness(flow, env=env) as h:
        statuses = h.statuses("tls")
        errors = [d["msg"] for d in h.logs() if d.get("id") == "tls"]
    assert len(errors) == 1, errors
    text = str(errors[0]).removeprefix("failed to start: ")
    assert statuses == [{"fill": "red", "shape": "ring", "text": text[:60]}]
    return text


# ------------------------------------------------------------------ material that works


async def test_ca_file_trusts_the_server(pki: Pki, server: tuple[int, list[Any]]) -> None:
    port, seen = server
    async with FlowHarness(tls(ca=str(pki.ca))) as h:
        context = node(h).client_context()
        assert await handshake(context, port) == b"ok\n"
        assert h.statuses("tls") == []
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert not seen[0][1]  # no client certificate was configured, none was sent


async def test_client_certificate_files_are_presented(
    pki: Pki, server: tuple[int, list[Any]]
) -> None:
    port, seen = server
    flow = tls(ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key))
    async with FlowHarness(flow) as h:
        assert await handshake(node(h).client_context(), port) == b"ok\n"
        assert node(h).has_client_certificate
    subject = dict(pair[0] for pair in seen[0][1]["subject"])
    assert subject["commonName"] == "edge-runner-1"


async def test_uploaded_pem_credentials_and_no_key_left_on_disk(
    pki: Pki, server: tuple[int, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, seen = server
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    creds = {
        "cadata": pki.text(pki.ca),
        "certdata": pki.text(pki.client_cert),
        "keydata": pki.text(pki.client_key_encrypted),
        "passphrase": PASSPHRASE,
    }
    async with FlowHarness(tls(credentials=creds)) as h:
        assert await handshake(node(h).client_context(), port) == b"ok\n"
        # the key is never written to the flows, events or any leftover temporary file; its
        # transient file was in the runner's private tmp/ (what a wipe removes), not in /tmp
        assert PASSPHRASE not in repr(h.engine.flows)
        assert "PRIVATE KEY" not in repr(h.engine.flows)
        assert list(h.paths.temp.iterdir()) == []
        assert stat.S_IMODE(h.paths.temp.stat().st_mode) == 0o700
        assert h.paths.holds_secret(h.paths.temp)
    assert list(scratch.iterdir()) == []
    assert seen[0][1]["subject"]


async def test_pfx_file_with_passphrase_brings_its_own_ca(
    pki: Pki, server: tuple[int, list[Any]]
) -> None:
    port, seen = server
    flow = tls(certType="pfx", p12=str(pki.client_p12), credentials={"passphrase": PASSPHRASE})
    async with FlowHarness(flow) as h:
        assert await handshake(node(h).client_context(), port) == b"ok\n"
    assert seen[0][1]["subject"]


async def test_env_variables_hold_the_pem_text(pki: Pki, server: tuple[int, list[Any]]) -> None:
    port, seen = server
    env = {"PLANT_CA": pki.text(pki.ca), "PLANT_CERT": pki.text(pki.client_cert)}
    env["PLANT_KEY"] = pki.text(pki.client_key)
    flow = tls(certType="env", caEnv="PLANT_CA", certEnv="PLANT_CERT", keyEnv="PLANT_KEY")
    async with FlowHarness(flow, env=env) as h:
        assert await handshake(node(h).client_context(), port) == b"ok\n"
    assert seen[0][1]["subject"]


async def test_env_field_given_as_a_reference_is_refused_without_echoing_the_key(
    pki: Pki,
) -> None:
    # deploy replaces "${PLANT_KEY}" with the key itself; the error must not repeat it
    env = {"PLANT_CERT": pki.text(pki.client_cert), "PLANT_KEY": pki.text(pki.client_key)}
    flow = tls(certType="env", certEnv="PLANT_CERT", keyEnv="${PLANT_KEY}")
    text = await failure(flow, env=env)
    assert text == (
        "the private key field holds PEM text, not a variable name: write VAR, not ${VAR}"
    )


async def test_alpn_and_servername(pki: Pki, server: tuple[int, list[Any]]) -> None:
    port, seen = server
    async with FlowHarness(tls(ca=str(pki.ca), alpnprotocol="x-test", servername="localhost")) as h:
        assert await handshake(node(h).client_context(), port) == b"ok\n"
    alpn, _, sni = seen[0]
    assert alpn == "x-test"
    assert sni == "localhost"  # sent instead of the dialled 127.0.0.1


async def test_verification_off_and_per_call_override(
    pki: Pki, server: tuple[int, list[Any]]
) -> None:
    port, _ = server
    async with FlowHarness(tls(ca=str(pki.other_ca), verifyservercert="false")) as h:
        loose = node(h).client_context()
        strict = node(h).client_context(verify=True)
        assert await handshake(loose, port) == b"ok\n"
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake(strict, port)
    assert loose.verify_mode == ssl.CERT_NONE
    assert not loose.check_hostname


# ------------------------------------------------------------------ material that does not


async def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    assert await failure(tls(ca=str(path))) == (
        f"cannot read CA certificate file '{path}': No such file or directory"
    )


async def test_unreadable_path_is_a_folder(tmp_path: Path) -> None:
    assert await failure(tls(ca=str(tmp_path))) == (
        f"cannot read CA certificate file '{tmp_path}': Is a directory"
    )


async def test_not_pem_at_all(tmp_path: Path) -> None:
    path = tmp_path / "ca.der"
    path.write_bytes(b"\x30\x82\x01\x0a garbage")
    assert await failure(tls(ca=str(path))) == (
        f"CA certificate file '{path}' is not a PEM certificate (no '-----BEGIN' line)"
    )


async def test_broken_pem(tmp_path: Path, pki: Pki) -> None:
    path = tmp_path / "ca.pem"
    text = pki.text(pki.ca)
    path.write_text(text[:60] + "!!!!" + text[64:])
    assert (await failure(tls(ca=str(path)))).startswith(
        f"CA certificate file '{path}' is not a valid PEM certificate"
    )


async def test_certificate_without_key(pki: Pki) -> None:
    assert await failure(tls(cert=str(pki.client_cert))) == (
        "No certificate/key file provided: the certificate has no key"
    )
    creds = {"keydata": pki.text(pki.client_key)}
    assert await failure(tls(credentials=creds)) == (
        "No certificate/key file provided: the key has no certificate"
    )


async def test_encrypted_key_without_passphrase(pki: Pki) -> None:
    flow = tls(cert=str(pki.client_cert), key=str(pki.client_key_encrypted))
    assert await failure(flow) == (
        f"private key file '{pki.client_key_encrypted}' is encrypted: set the passphrase"
    )


async def test_wrong_passphrase(pki: Pki) -> None:
    flow = tls(
        cert=str(pki.client_cert),
        key=str(pki.client_key_encrypted),
        credentials={"passphrase": "not it"},
    )
    assert (
        await failure(flow) == f"wrong passphrase for private key file '{pki.client_key_encrypted}'"
    )


async def test_key_of_another_certificate(pki: Pki) -> None:
    flow = tls(cert=str(pki.client_cert), key=str(pki.other_client_key))
    assert await failure(flow) == (
        f"the private key does not belong to the certificate file '{pki.client_cert}'"
    )


async def test_pfx_wrong_passphrase_and_bad_base64(pki: Pki) -> None:
    flow = tls(certType="pfx", p12=str(pki.client_p12), credentials={"passphrase": "nope"})
    assert await failure(flow) == (
        f"pfx file '{pki.client_p12}' cannot be read: wrong passphrase, or not a PKCS#12 file"
    )
    data = base64.b64encode(pki.client_p12.read_bytes()).decode()
    assert await failure(tls(certType="pfx", credentials={"p12data": data})) == (
        "uploaded pfx (p12data) cannot be read: not a PKCS#12 file, or it is encrypted: set"
        " the passphrase"
    )
    assert await failure(tls(certType="pfx", credentials={"p12data": "%%%"})) == (
        "uploaded pfx (p12data) is not base64 text"
    )


async def test_unset_environment_variable() -> None:
    assert await failure(tls(certType="env", caEnv="NO_SUCH_CA")) == (
        "environment variable 'NO_SUCH_CA' for the CA certificate is not set"
    )


async def test_users_fail_to_start_with_the_same_reason(tmp_path: Path) -> None:
    path = tmp_path / "gone.pem"
    flow = [
        *tls(ca=str(path)),
        {"id": "bk", "type": "mqtt-broker", "broker": "127.0.0.1", "usetls": True, "tls": "tls"},
        {"id": "rq", "type": "http request", "url": "https://127.0.0.1:1/", "tls": "tls"},
    ]
    async with FlowHarness(flow) as h:
        reason = f"cannot read CA certificate file '{path}': No such file or directory"
        for user in ("tls", "bk", "rq"):
            assert h.statuses(user) == [{"fill": "red", "shape": "ring", "text": reason[:60]}]


async def test_missing_tls_node_is_named() -> None:
    flow = [{"id": "bk", "type": "mqtt-broker", "broker": "127.0.0.1", "usetls": True}]
    flow[0]["tls"] = "t9"
    async with FlowHarness(flow) as h:
        assert h.statuses("bk") == [
            {"fill": "red", "shape": "ring", "text": "no tls-config node 't9'"}
        ]


async def test_schema_rejects_bad_flags() -> None:
    for bad in ({"verifyservercert": "maybe"}, {"certType": "jks"}):
        with pytest.raises(DeployError):
            async with FlowHarness(tls(**bad)):
                pass
