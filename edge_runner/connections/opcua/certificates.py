"""The runner's OPC-UA client certificate: made once with ``cryptography`` (RSA 2048, SHA-256,
the ApplicationUri as a URI SAN, which asyncua checks) and kept in ``<data dir>/certificates/opcua``
(``RunnerPaths.opcua_pki``)."""

from __future__ import annotations

import datetime as dt
import logging
import socket
from pathlib import Path

from edge_runner.lib.fsutil import atomic_write_bytes

log = logging.getLogger("edge_runner.connections.opcua")

APPLICATION_NAME = "Manifold edge runner"
CERT_DAYS = 5 * 365


def application_uri() -> str:
    """The client's ApplicationUri; its certificate carries it as a URI SAN (asyncua checks)."""
    return f"urn:manifold:edge-runner:{socket.gethostname()}"


def client_certificate(pki: Path, uri: str | None = None) -> tuple[Path, Path]:
    """The runner's self-signed client certificate (DER) and key (PEM), made once and reused
    while valid for ``uri``; regenerated when missing, expired or for another URI."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    uri = uri or application_uri()
    cert_path, key_path = pki / "client-cert.der", pki / "client-key.pem"
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_der_x509_certificate(cert_path.read_bytes())
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            if uri in sans.get_values_for_type(
                x509.UniformResourceIdentifier
            ) and cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=1):
                return cert_path, key_path
        except (ValueError, x509.ExtensionNotFound):
            log.warning("OPC-UA client certificate %s is unreadable; making a new one", cert_path)
    pki.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, APPLICATION_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Manifold"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(uri), x509.DNSName(socket.gethostname())]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    atomic_write_bytes(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    atomic_write_bytes(cert_path, cert.public_bytes(serialization.Encoding.DER), 0o644)
    log.info("made OPC-UA client certificate %s for %s", cert_path, uri)
    return cert_path, key_path
