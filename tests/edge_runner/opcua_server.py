"""A real asyncua OPC-UA server on 127.0.0.1 for the OPC-UA node tests.

The server runs in its own thread with its own event loop so that one instance can serve every
test of a session (its ``init()`` takes about a second) while each test keeps its own loop.
Tests talk to it only over the network, like the runner talks to a PLC; ``set_value`` /
``value`` reach into the address space to play the machine side.

Address space (namespace ``urn:manifold:test-plant``, index 2), all variables writable::

    Objects/Plant (ns=2;s=Plant)
        Temperature  Double   ns=2;s=Plant.Temperature
        Counter      Int32    ns=2;s=Plant.Counter
        Running      Boolean  ns=2;s=Plant.Running
        Name         String   ns=2;s=Plant.Name
        Setpoint     Float    ns=2;s=Plant.Setpoint
        Small        Int16    ns=2;s=Plant.Small
        Big          Int64    ns=2;s=Plant.Big
        Word         UInt16   ns=2;s=Plant.Word
        DWord        UInt32   ns=2;s=Plant.DWord
        Stamp        DateTime ns=2;s=Plant.Stamp
    Objects/Plant/Line (ns=2;s=Plant.Line), a folder

Endpoints: security None, Basic256Sha256 Sign and Basic256Sha256 SignAndEncrypt. Identity:
anonymous; user ``olivia`` with password ``PASSWORD``; X.509 user certificates listed in
``trusted_user_certs`` (DER bytes).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

NAMESPACE = "urn:manifold:test-plant"
PASSWORD = "correct-Horse-battery-9"
SERVER_URI = "urn:manifold:test-plant-server"
T = TypeVar("T")

VARIABLES: dict[str, tuple[str, Any]] = {
    "Temperature": ("Double", 21.5),
    "Counter": ("Int32", 0),
    "Running": ("Boolean", False),
    "Name": ("String", "press-1"),
    "Setpoint": ("Float", 1.5),
    "Small": ("Int16", 0),
    "Big": ("Int64", 0),
    "Word": ("UInt16", 0),
    "DWord": ("UInt32", 0),
    "Stamp": ("DateTime", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_certificate(pki: Path) -> tuple[Path, Path]:
    """A self-signed server certificate with the URI SAN asyncua checks (made once per dir)."""
    from asyncua.crypto.cert_gen import (
        dump_private_key_as_pem,
        generate_private_key,
        generate_self_signed_app_certificate,
    )
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key_path, cert_path = pki / "server-key.pem", pki / "server-cert.der"
    if key_path.exists() and cert_path.exists():
        return cert_path, key_path
    pki.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    cert = generate_self_signed_app_certificate(
        key,
        SERVER_URI,
        {},
        [
            x509.UniformResourceIdentifier(SERVER_URI),
            x509.DNSName(socket.gethostname()),
            x509.DNSName("localhost"),
        ],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    key_path.write_bytes(dump_private_key_as_pem(key))
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    return cert_path, key_path


class _Users:
    """Anonymous, one username/password, and trusted X.509 user certificates.

    ``seen`` records who logged in, so tests can tell which identity the runner used."""

    def __init__(self, trusted: list[bytes]) -> None:
        self.trusted = trusted
        self.seen: list[str] = []

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> Any:
        from asyncua.crypto.permission_rules import User, UserRole
        from cryptography.hazmat.primitives.serialization import Encoding

        # asyncua passes the secure channel's certificate (DER bytes) for anonymous and
        # username logins and the X.509 token's certificate for certificate logins
        if certificate is not None:
            der = (
                certificate
                if isinstance(certificate, bytes)
                else certificate.public_bytes(Encoding.DER)
            )
            if der in self.trusted:
                self.seen.append("certificate")
                return User(role=UserRole.User, name="cert-user")
        if username:
            if username == "olivia" and password == PASSWORD:
                self.seen.append("olivia")
                return User(role=UserRole.User, name="olivia")
            return None
        self.seen.append("anonymous")
        return User(role=UserRole.User)


class PlantServer:
    """Start/stop a real asyncua server on ``127.0.0.1:port`` from any thread."""

    def __init__(self, pki: Path, port: int | None = None) -> None:
        import logging

        # the server narrates every request at INFO; keep test output readable
        logging.getLogger("asyncua.server").setLevel(logging.WARNING)
        self.port = port or free_port()
        self.pki = pki
        self.url = f"opc.tcp://127.0.0.1:{self.port}/manifold/"
        self.trusted_user_certs: list[bytes] = []
        self.users = _Users(self.trusted_user_certs)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="opcua-server", daemon=True
        )
        self._thread.start()
        self._server: Any = None
        self._nodes: dict[str, Any] = {}

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._run(self._start())

    def stop(self) -> None:
        self._run(self._stop())

    def close(self) -> None:
        if self._server is not None:
            self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _start(self) -> None:
        from asyncua import ua as ua_module
        from asyncua.server.server import Server

        ua: Any = ua_module  # partial stubs

        cert, key = _server_certificate(self.pki)
        server = Server(user_manager=self.users)  # type: ignore[arg-type]  # duck-typed manager
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("Manifold test plant")
        await server.set_application_uri(SERVER_URI)
        server.set_security_policy(
            [
                ua.SecurityPolicyType.NoSecurity,
                ua.SecurityPolicyType.Basic256Sha256_Sign,
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ]
        )
        server.set_identity_tokens(
            [ua.AnonymousIdentityToken, ua.UserNameIdentityToken, ua.X509IdentityToken]
        )
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        ns = await server.register_namespace(NAMESPACE)
        plant = await server.nodes.objects.add_object(
            ua.NodeId("Plant", ns), ua.QualifiedName("Plant", ns)
        )
        await plant.add_folder(ua.NodeId("Plant.Line", ns), ua.QualifiedName("Line", ns))
        self._nodes = {}
        for name, (type_name, initial) in VARIABLES.items():
            variant_type = getattr(ua.VariantType, type_name)
            var = await plant.add_variable(
                ua.NodeId(f"Plant.{name}", ns),
                ua.QualifiedName(name, ns),
                ua.Variant(initial, variant_type),
            )
            await var.set_writable()
            self._nodes[name] = var
        await server.start()
        self._server = server

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    # ------------------------------------------------------------------ machine side
    def set_value(self, name: str, value: Any) -> None:
        """Change a variable as the machine would (subscriptions see it)."""
        from asyncua import ua

        type_name = VARIABLES[name][0]
        variant = ua.Variant(value, getattr(ua.VariantType, type_name))
        self._run(self._nodes[name].write_value(variant))

    def value(self, name: str) -> Any:
        return self._run(self._nodes[name].read_value())


_shared: PlantServer | None = None


def shared_server(pki: Path, cleanup: Any = None) -> PlantServer:
    """The session's one server, started on first use. ``cleanup`` (pytest's
    ``config.add_cleanup``) registers its shutdown at the end of the session."""
    global _shared
    if _shared is None:
        _shared = PlantServer(pki)
        _shared.start()
        if cleanup is not None:
            cleanup(_close_shared)
    return _shared


def _close_shared() -> None:
    global _shared
    server, _shared = _shared, None
    if server is not None:
        server.close()
