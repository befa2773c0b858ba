"""A private PKI for TLS tests, generated in the test with ``cryptography``: a CA, a server
certificate for 127.0.0.1/localhost, a client certificate, and a second unrelated CA (the
"wrong CA"). Nothing is downloaded; EC P-256 keys keep generation fast."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PASSPHRASE = "s3cret-phrase"


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Manifold tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey, passphrase: str | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, encryption
    )


def _ca(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common: str,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


@dataclass(frozen=True)
class Pki:
    """Paths of the generated PEM files (and their text, for credential-based configs)."""

    folder: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path  # the same key, encrypted with PASSPHRASE
    client_p12: Path  # client cert + key + CA, encrypted with PASSPHRASE
    other_ca: Path  # a CA that signed nothing here
    other_client_cert: Path  # signed by other_ca (a client the broker must refuse)
    other_client_key: Path

    def text(self, path: Path) -> str:
        return path.read_text()


def make_pki(folder: Path) -> Pki:
    """Write a CA, a server cert (127.0.0.1, localhost, broker.test), client certs and an
    unrelated CA into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("Manifold test CA")
    other, other_key = _ca("Unrelated CA")
    server, server_key = _leaf(
        "127.0.0.1",
        ca,
        ca_key,
        [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost"),
            x509.DNSName("broker.test"),
        ],
        ExtendedKeyUsageOID.SERVER_AUTH,
    )
    client, client_key = _leaf("edge-runner-1", ca, ca_key, [], ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger, stranger_key = _leaf(
        "stranger", other, other_key, [], ExtendedKeyUsageOID.CLIENT_AUTH
    )
    files = {
        "ca.pem": _pem(ca),
        "server.pem": _pem(server),
        "server.key": _key_pem(server_key),
        "client.pem": _pem(client),
        "client.key": _key_pem(client_key),
        "client-encrypted.key": _key_pem(client_key, PASSPHRASE),
        "client.p12": pkcs12.serialize_key_and_certificates(
            b"edge-runner-1",
            client_key,
            client,
            [ca],
            serialization.BestAvailableEncryption(PASSPHRASE.encode()),
        ),
        "other-ca.pem": _pem(other),
        "stranger.pem": _pem(stranger),
        "stranger.key": _key_pem(stranger_key),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
        (folder / name).chmod(0o600)
    return Pki(
        folder=folder,
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        client_key_encrypted=folder / "client-encrypted.key",
        client_p12=folder / "client.p12",
        other_ca=folder / "other-ca.pem",
        other_client_cert=folder / "stranger.pem",
        other_client_key=folder / "stranger.key",
    )
