"""http request over HTTPS against a real aiohttp server on 127.0.0.1 with certificates made in
the test: trusting a private CA, verification off, client certificates, clear errors."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from edge_runner.testing import FlowHarness
from tests.edge_runner.connections.certs import PASSPHRASE, Pki, make_pki

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def whoami(request: web.Request) -> web.Response:
    """Names the client certificate the TLS layer verified, if any."""
    der = request.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)  # type: ignore[union-attr]  # a TLS request
    if not der:
        return web.Response(text="anonymous")
    cert = x509.load_der_x509_certificate(der)
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return web.Response(text=f"hello {common!s}")


async def serve(pki: Pki, client_certs: ssl.VerifyMode) -> AsyncIterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    context.load_verify_locations(str(pki.ca))
    context.verify_mode = client_certs
    app = web.Application()
    app.router.add_get("/whoami", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started
    yield f"https://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def https(pki: Pki) -> AsyncIterator[str]:
    """Client certificates optional (verified when given)."""
    async for url in serve(pki, ssl.CERT_OPTIONAL):
        yield url


@pytest.fixture
async def mutual(pki: Pki) -> AsyncIterator[str]:
    """Client certificates required."""
    async for url in serve(pki, ssl.CERT_REQUIRED):
        yield url


def flow(url: str, tls: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = [
        {
            "id": "rq",
            "type": "http request",
            "method": "GET",
            "ret": "txt",
            "url": url,
            "tls": "tls" if tls is not None else "",
            "wires": [["out"]],
        },
        {"id": "out", "type": "helper"},
        {"id": "c1", "type": "catch", "scope": None, "uncaught": False, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]
    if tls is not None:
        nodes.append({"id": "tls", "type": "tls-config", **tls})
    return nodes


async def call(url: str, tls: dict[str, Any] | None = None, **msg: Any) -> dict[str, Any]:
    """The response message, or the caught error message with the node's last status."""
    async with FlowHarness(flow(url, tls)) as h:
        h.receive("rq", {"payload": "", **msg})
        await h.until(lambda: "out" in h.messages or "errs" in h.messages, 5, "a result")
        await h.quiet(0.05)
        if "errs" in h.messages:
            error = h.messages["errs"][0]
            error["status"] = h.statuses("rq")[-1]
            # without senderr the failed message is sent on too, with the error as payload
            error["sent_on"] = [m["payload"] for m in h.messages.get("out", [])]
            return error
        return h.messages["out"][0]


async def test_trusting_the_private_ca_gets_the_response(https: str, pki: Pki) -> None:
    out = await call(f"{https}/whoami", {"ca": str(pki.ca)})
    assert out["statusCode"] == 200
    assert out["payload"] == "anonymous"


async def test_an_untrusted_server_fails_with_certificate_verify_failed(
    https: str, pki: Pki
) -> None:
    err = await call(f"{https}/whoami", {"ca": str(pki.other_ca)})
    message = err["error"]["message"]
    # Node.js's (got's) text and code, as Node-RED reports them
    assert message == "RequestError: self-signed certificate in certificate chain"
    assert err["status"] == {"fill": "red", "shape": "ring", "text": "SELF_SIGNED_CERT_IN_CHAIN"}
    assert err["sent_on"] == [f"{message} : {https}/whoami"]


async def test_without_a_tls_node_the_system_roots_do_not_trust_a_private_ca(
    https: str,
) -> None:
    err = await call(f"{https}/whoami")
    assert err["error"]["message"] in (
        "RequestError: unable to get local issuer certificate",
        "RequestError: self-signed certificate in certificate chain",
    )


async def test_verification_off_accepts_the_certificate(https: str, pki: Pki) -> None:
    out = await call(f"{https}/whoami", {"ca": str(pki.other_ca), "verifyservercert": False})
    assert out["payload"] == "anonymous"


async def test_msg_reject_unauthorized_false_without_a_tls_node(https: str) -> None:
    assert (await call(f"{https}/whoami", rejectUnauthorized=False))["payload"] == "anonymous"
    assert (await call(f"{https}/whoami", rejectUnauthorized="false"))["payload"] == "anonymous"


async def test_a_tls_node_decides_verification_not_the_message(https: str, pki: Pki) -> None:
    # as in Node-RED: msg.rejectUnauthorized only applies when no tls node is configured
    err = await call(f"{https}/whoami", {"ca": str(pki.other_ca)}, rejectUnauthorized=False)
    assert err["error"]["message"].startswith("RequestError: self-signed certificate")


async def test_client_certificate_is_presented(mutual: str, pki: Pki) -> None:
    tls = {"ca": str(pki.ca), "cert": str(pki.client_cert), "key": str(pki.client_key)}
    out = await call(f"{mutual}/whoami", tls)
    assert out["payload"] == "hello edge-runner-1"


async def test_client_certificate_from_a_pfx_with_passphrase(mutual: str, pki: Pki) -> None:
    import base64

    tls = {
        "certType": "pfx",
        "credentials": {
            "p12data": base64.b64encode(pki.client_p12.read_bytes()).decode(),
            "passphrase": PASSPHRASE,
        },
    }
    assert (await call(f"{mutual}/whoami", tls))["payload"] == "hello edge-runner-1"


async def test_missing_client_certificate_names_the_likely_cause(mutual: str, pki: Pki) -> None:
    # TLS 1.3 servers refuse a missing certificate after the handshake; asyncio reports only
    # that the server closed the connection, so the error names the likely cause
    err = await call(f"{mutual}/whoami", {"ca": str(pki.ca)})
    assert err["error"]["message"] == (
        "RequestError: socket hang up (a server that requires a client certificate does this;"
        " none is set)"
    )
    assert err["status"]["fill"] == "red"


async def test_servername_is_checked_instead_of_the_dialled_address(https: str, pki: Pki) -> None:
    url = f"{https}/whoami"
    assert (await call(url, {"ca": str(pki.ca), "servername": "broker.test"}))["statusCode"] == 200
    err = await call(url, {"ca": str(pki.ca), "servername": "plc.test"})
    assert err["error"]["message"] == (
        "RequestError: Hostname/IP does not match certificate's altnames: Host: plc.test."
    )
    assert err["status"]["text"] == "ERR_TLS_CERT_ALTNAME_INVALID"


async def test_a_broken_tls_node_fails_the_request_node_at_start(https: str, tmp_path: Any) -> None:
    missing = tmp_path / "nope.pem"
    async with FlowHarness(flow(f"{https}/whoami", {"ca": str(missing)})) as h:
        tls_status = h.statuses("tls")[-1]
        rq_status = h.statuses("rq")[-1]
        h.receive("rq", {"payload": ""})
        await h.quiet(0.1)
    reason = f"cannot read CA certificate file '{missing}': No such file or directory"
    assert tls_status == {"fill": "red", "shape": "ring", "text": reason[:60]}
    assert rq_status["fill"] == "red"
    assert rq_status["text"] == reason[:60]
    assert "out" not in h.messages
