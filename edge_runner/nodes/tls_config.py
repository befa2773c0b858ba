"""``tls-config``: the config node holding TLS material (certificate, private key, CA) that
``mqtt-broker`` and ``http request`` use, with Node-RED's field and credential names.

The node parses and checks its material once (lazily, on the first use or at start, whichever
comes first: config nodes start in no particular order) and hands out ``ssl.SSLContext``
objects. Every problem is a ``NeedsUserFix`` naming the file or field at fault: an unreadable
file, text that is not PEM, an encrypted key without (or with the wrong) passphrase, a key that
does not belong to the certificate.

``ssl`` cannot load a certificate chain from memory, so in-memory material (credentials,
environment variables, a pfx) is written to a private temporary file for the duration of one
``load_cert_chain`` call, the key encrypted with a one-time password.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import field_validator

from edge_runner.contract import Category, NeedsUserFix, Node, NodeConfig, NodeSpec, register
from edge_runner.lib.tls import tls_failure as tls_failure  # re-exported: public name

if TYPE_CHECKING:
    from pathlib import Path


class Config(NodeConfig):
    certType: Literal["files", "pfx", "env"] = "files"  # noqa: N815  # Node-RED's field names
    cert: str = ""
    key: str = ""
    p12: str = ""
    p12name: str = ""
    ca: str = ""
    certname: str = ""
    keyname: str = ""
    caname: str = ""
    servername: str = ""
    verifyservercert: bool = True
    alpnprotocol: str = ""
    certEnv: str = ""  # noqa: N815
    keyEnv: str = ""  # noqa: N815
    caEnv: str = ""  # noqa: N815

    @field_validator("certType", mode="before")
    @classmethod
    def _cert_type(cls, value: Any) -> Any:
        return "files" if value in (None, "") else value

    @field_validator("verifyservercert", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        # flows written by hand or old editors store "true"/"false"
        if isinstance(value, str):
            text = value.strip().lower()
            if text not in ("true", "false", ""):
                raise ValueError(f"verifyservercert must be true or false, got {value!r}")
            return text != "false"
        return True if value is None else value

    @field_validator(
        "cert", "key", "p12", "ca", "servername", "alpnprotocol", "certEnv", "keyEnv", "caEnv"
    )
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


SPEC = NodeSpec(
    type="tls-config",
    version=1,
    category=Category.CONFIG,
    inputs=0,
    outputs=0,
    is_config=True,
    label="TLS configuration",
    credentials=("certdata", "keydata", "cadata", "p12data", "passphrase"),
    help="""TLS options shared by `mqtt-broker` and `http request` nodes: the CA that signs the
server's certificate, and a client certificate with its private key for mutual TLS.

### Properties
- **certType**: where the material comes from — `files` (default), `pfx` (one PKCS#12
  bundle) or `env` (PEM text in environment variables).
- **cert** / **key** / **ca**: paths of PEM files on the device (`files`). A certificate needs
  its key and a key its certificate. When no path is set, the uploaded PEM text in the
  credentials **certdata** / **keydata** / **cadata** is used instead (*certname*, *keyname*,
  *caname* only remember the uploaded file names).
- **p12**: path of a `.pfx`/`.p12` file (`pfx`), or the base64 credential **p12data**.
- **certEnv** / **keyEnv** / **caEnv**: names of environment variables holding PEM text
  (`env`; `${VAR}` templates work too).
- **passphrase** (credential): decrypts an encrypted private key or pfx.
- **verifyservercert**: check the server's certificate chain and name (default on). Off
  accepts any certificate — for tests only.
- **servername**: the name sent for SNI and checked against the server's certificate instead
  of the host connected to.
- **alpnprotocol**: one ALPN protocol to offer (e.g. `x-amzn-mqtt-ca`).

### Details
A **ca** replaces the system's trusted roots (as in Node-RED); without one the system roots
are used. Connections require TLS 1.2 or newer. The material is checked when the flow starts:
a missing file, text that is not PEM, an encrypted key without the right passphrase or a key
that does not match its certificate turns this node red with the reason, and every node using
it fails to start with the same reason.
""",
)


@dataclass(frozen=True)
class _Source:
    """One piece of PEM material and where it came from (for error messages)."""

    data: bytes
    where: str


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when its handshake fails: paho drops a socket whose handshake raised
    without closing it, leaking one descriptor per failed attempt until garbage collection."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


class TlsContext(ssl.SSLContext):
    """An ``SSLContext`` that presents ``servername`` (SNI and the name the certificate is
    checked against) whatever host the client library connects to. paho and asyncio pass the
    host they dial as ``server_hostname``; neither lets a caller choose another name."""

    servername: str | None = None
    sslsocket_class = _ClosingSSLSocket

    def wrap_socket(  # type: ignore[override]  # same parameters, narrower typing than stubs
        self,
        sock: Any,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | None = None,
        session: Any = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(
            sock,
            server_side,
            do_handshake_on_connect,
            suppress_ragged_eofs,
            self.servername or server_hostname,
            session,
        )

    def wrap_bio(  # type: ignore[override]  # same parameters, narrower typing than stubs
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | None = None,
        session: Any = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(
            incoming, outgoing, server_side, self.servername or server_hostname, session
        )


@register
class TlsConfigNode(Node):
    """Checks TLS material once and gives ``ssl.SSLContext`` objects to the nodes using it."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)
        self._contexts: dict[bool, ssl.SSLContext] = {}
        self._failure: NeedsUserFix | None = None
        self.has_client_certificate = False  # known once a context is built

    @property
    def verify(self) -> bool:
        """Whether servers' certificates are checked (``verifyservercert``)."""
        return self.cfg.verifyservercert

    @property
    def fingerprint(self) -> str:
        """Changes whenever the config or credentials change (part of shared connection
        keys, so a connection is never reused across different TLS settings)."""
        import hashlib  # lazily: a runner without TLS never needs it

        creds = {k: str(v) for k, v in sorted(self.rt.credentials.items())}
        blob = json.dumps([self.cfg.model_dump(), creds], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    async def start(self) -> None:
        self.client_context()

    def client_context(self, verify: bool | None = None) -> ssl.SSLContext:
        """An ``SSLContext`` for connecting to servers; ``verify`` overrides
        ``verifyservercert``. Raises ``NeedsUserFix`` naming what is wrong."""
        check = self.verify if verify is None else verify
        if self._failure is not None:
            raise self._failure
        found = self._contexts.get(check)
        if found is None:
            try:
                found = self._build(check)
            except NeedsUserFix as exc:
                self._failure = exc
                raise
            self._contexts[check] = found
        return found

    # ------------------------------------------------------------------ material
    def _credential(self, name: str) -> str:
        value = self.rt.credentials.get(name)
        return value if isinstance(value, str) else ""

    def _read(self, path: str, what: str) -> _Source:
        try:
            with open(path, "rb") as handle:
                return _Source(handle.read(), f"{what} file {path!r}")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise NeedsUserFix(f"cannot read {what} file {path!r}: {reason}") from exc

    def _env(self, name: str, what: str) -> _Source | None:
        if not name:
            return None
        if "-----BEGIN" in name or "\n" in name:
            # "${VAR}" is replaced at deploy time, so the field already holds the PEM text;
            # never echo it (it may be a private key)
            raise NeedsUserFix(
                f"the {what} field holds PEM text, not a variable name: write VAR, not ${{VAR}}"
            )
        value = self.rt.evaluate(name, "env")
        if value in (None, ""):
            raise NeedsUserFix(f"environment variable {name!r} for the {what} is not set")
        return _Source(str(value).encode(), f"{what} from environment variable {name!r}")

    def _material(self) -> tuple[_Source | None, _Source | None, _Source | None]:
        """(certificate, key, CA) as given, before parsing."""
        cfg = self.cfg
        if cfg.certType == "env":
            return (
                self._env(cfg.certEnv, "certificate"),
                self._env(cfg.keyEnv, "private key"),
                self._env(cfg.caEnv, "CA certificate"),
            )
        ca_path = cfg.ca if cfg.certType == "files" else ""
        if cfg.cert or cfg.key or ca_path:
            if bool(cfg.cert) != bool(cfg.key):
                raise NeedsUserFix(
                    "No certificate/key file provided: "
                    + ("the certificate has no key" if cfg.cert else "the key has no certificate")
                )
            return (
                self._read(cfg.cert, "certificate") if cfg.cert else None,
                self._read(cfg.key, "private key") if cfg.key else None,
                self._read(ca_path, "CA certificate") if ca_path else None,
            )
        cert, key = self._credential("certdata"), self._credential("keydata")
        ca = self._credential("cadata")
        if bool(cert.strip()) != bool(key.strip()):
            raise NeedsUserFix(
                "No certificate/key file provided: "
                + ("the certificate has no key" if cert.strip() else "the key has no certificate")
            )
        return (
            _Source(cert.encode(), "uploaded certificate (certdata)") if cert.strip() else None,
            _Source(key.encode(), "uploaded private key (keydata)") if key.strip() else None,
            _Source(ca.encode(), "uploaded CA certificate (cadata)") if ca.strip() else None,
        )

    def _pfx(self) -> _Source | None:
        if self.cfg.certType != "pfx":
            return None
        if self.cfg.p12:
            return self._read(self.cfg.p12, "pfx")
        data = self._credential("p12data").strip()
        if not data:
            return None
        import base64
        import binascii

        try:
            return _Source(base64.b64decode(data, validate=True), "uploaded pfx (p12data)")
        except (binascii.Error, ValueError) as exc:
            raise NeedsUserFix("uploaded pfx (p12data) is not base64 text") from exc

    # ------------------------------------------------------------------ building
    def _build(self, verify: bool) -> ssl.SSLContext:
        passphrase = self._credential("passphrase").encode() or None
        pfx = self._pfx()
        if pfx is not None:
            chain, key, extra_ca = load_pfx(pfx.data, passphrase, pfx.where)
            ca = extra_ca or None
        else:
            cert_src, key_src, ca_src = self._material()
            chain = load_certificates(cert_src.data, cert_src.where) if cert_src else []
            key = load_key(key_src.data, passphrase, key_src.where) if key_src else None
            ca = load_certificates(ca_src.data, ca_src.where) if ca_src else None
            if key is not None and chain:
                check_pair(chain[0], key, cert_src.where if cert_src else "")

        context = new_client_context(pem_text(ca) if ca else None)
        if key is not None and chain:
            paths = self.rt.paths
            self._load_chain(context, chain_pem(chain, key), paths.ensure(paths.temp))
            self.has_client_certificate = True
        if self.cfg.alpnprotocol:
            context.set_alpn_protocols([self.cfg.alpnprotocol])
        context.servername = self.cfg.servername or None
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    @staticmethod
    def _load_chain(context: ssl.SSLContext, pem: tuple[bytes, bytes], temp_dir: Path) -> None:
        """Load the chain through a 0600 file in the runner's private temp directory (ssl
        takes files only), so a crash in between leaves the key where a wipe finds it."""
        import os
        import tempfile

        body, password = pem
        handle, path = tempfile.mkstemp(prefix="tls-", suffix=".pem", dir=temp_dir)  # mode 0600
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(body)
            context.load_cert_chain(path, password=password)
        except ssl.SSLError as exc:
            raise NeedsUserFix(f"the certificate and key cannot be used: {exc}") from exc
        finally:
            os.unlink(path)


def new_client_context(cadata: str | None = None) -> TlsContext:
    """A client context requiring TLS 1.2+, trusting ``cadata`` (PEM) or else the system's
    roots (a CA replaces the roots, as in Node-RED)."""
    context = TlsContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cadata:
        context.load_verify_locations(cadata=cadata)
    else:
        context.load_default_certs()
    return context


def tls_of(node: Node, tls_id: str) -> TlsConfigNode:
    """The ``tls-config`` node a node names, or ``NeedsUserFix``."""
    found = node.rt.config_node(tls_id)
    if not isinstance(found, TlsConfigNode):
        raise NeedsUserFix(
            f"no tls-config node {tls_id!r}" if tls_id else "no tls-config node configured"
        )
    return found


# ---------------------------------------------------------------------- parsing (cryptography)


def load_certificates(data: bytes, where: str) -> list[Any]:
    """Every certificate in PEM ``data``, or ``NeedsUserFix`` saying ``where`` is not PEM."""
    from cryptography import x509

    if b"-----BEGIN" not in data:
        raise NeedsUserFix(f"{where} is not a PEM certificate (no '-----BEGIN' line)")
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise NeedsUserFix(f"{where} is not a valid PEM certificate: {exc}") from exc
    return list(found)


def load_key(data: bytes, passphrase: bytes | None, where: str) -> Any:
    """The private key in PEM ``data``, decrypted with ``passphrase`` when it is encrypted."""
    from cryptography.hazmat.primitives import serialization

    if b"-----BEGIN" not in data:
        raise NeedsUserFix(f"{where} is not a PEM private key (no '-----BEGIN' line)")
    encrypted = b"ENCRYPTED" in data
    if encrypted and not passphrase:
        raise NeedsUserFix(f"{where} is encrypted: set the passphrase")
    try:
        return serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except ValueError as exc:
        if encrypted:
            raise NeedsUserFix(f"wrong passphrase for {where}") from exc
        raise NeedsUserFix(f"{where} is not a valid PEM private key: {exc}") from exc
    except (TypeError, NotImplementedError) as exc:  # unsupported algorithm or encryption
        raise NeedsUserFix(f"{where} cannot be used: {exc}") from exc


def load_pfx(data: bytes, passphrase: bytes | None, where: str) -> tuple[list[Any], Any, list[Any]]:
    """(certificate chain, key, extra CA certificates) of a PKCS#12 bundle."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase)
    except ValueError as exc:
        hint = (
            "wrong passphrase, or not a PKCS#12 file"
            if passphrase
            else "not a PKCS#12 file, or it is encrypted: set the passphrase"
        )
        raise NeedsUserFix(f"{where} cannot be read: {hint}") from exc
    if key is None or cert is None:
        raise NeedsUserFix(f"{where} holds no certificate with its private key")
    return [cert], key, list(extra)


def check_pair(cert: Any, key: Any, where: str) -> None:
    """``NeedsUserFix`` unless ``key`` is the private key of ``cert``."""
    from cryptography.hazmat.primitives import serialization

    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if cert.public_key().public_bytes(encoding, fmt) != key.public_key().public_bytes(
        encoding, fmt
    ):
        raise NeedsUserFix(f"the private key does not belong to the {where}")


def pem_text(certs: list[Any]) -> str:
    """Certificates as one PEM string (what ``load_verify_locations(cadata=...)`` reads)."""
    from cryptography.hazmat.primitives import serialization

    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


def chain_pem(chain: list[Any], key: Any) -> tuple[bytes, bytes]:
    """(PEM of the chain followed by the key encrypted with a one-time password, password)."""
    import secrets

    from cryptography.hazmat.primitives import serialization

    password = secrets.token_urlsafe(24).encode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    return pem_text(chain).encode() + key_pem, password
