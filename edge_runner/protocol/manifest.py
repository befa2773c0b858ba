"""Signed snapshot manifests and credentials sealed to one device.

A manifest names one target issued to one device: the snapshot, a generation that only ever
grows (per team, one per issued target, so a replayed or older target is recognisable), and
every part of the bundle with its SHA-256 and size. The platform signs the manifest's
canonical JSON with the team's Ed25519 key; the device verifies it with the public keys it
pinned at registration before it fetches a single part, and every part against its hash
before it installs anything (RELIABILITY.md family 24)::

    {"manifest": {"format": "manifold-snapshot/1", "team": "acme", "device": "dev_...",
                  "snapshot": "snp_...", "generation": 17, "issued_at": "2026-12-03T...Z",
                  "name": "v3 line speed", "parts": {"flows.json": {"sha256": "...",
                  "size": 1234}, ...}},
     "key_id": "k1a2b3c4", "signature": "<base64 Ed25519 signature>"}

Credentials never travel in clear: the platform seals them to the X25519 key the device made
at registration (ephemeral X25519 + HKDF-SHA256 + ChaCha20-Poly1305, bound to the device id),
so the ``credentials.sealed`` part is readable by that device alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FORMAT = "manifold-snapshot/1"
# Parts every bundle has; ``credentials.sealed`` only when the snapshot has credentials and
# ``models/<sha256>.onnx`` one per referenced model.
FLOWS_PART = "flows.json"
SETTINGS_PART = "settings.json"  # {"env": {...}, "runner": {...}, "health": {...}}
CREDENTIALS_PART = "credentials.sealed"
MODELS_PREFIX = "models/"
PART_NAME = re.compile(r"^(?:[a-z][a-z0-9_.-]{0,63}|models/[0-9a-f]{64}\.onnx)$")
MAX_PARTS = 64
MAX_MANIFEST_BYTES = 64 * 1024
_SEAL_INFO = b"manifold-credentials-sealed-v1"


class ManifestError(ValueError):
    """A manifest or a part that must be refused; ``code`` names why (stable, for reports)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def canonical_json(value: Any) -> bytes:
    """The one byte form that is signed and hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_id(public_key: bytes) -> str:
    """A short stable name of a public key (the first 16 hex digits of its SHA-256)."""
    return "k" + sha256_hex(public_key)[:16]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str, code: str = "malformed") -> bytes:
    if not isinstance(text, str):
        raise ManifestError(code, f"{what} must be a base64 string")
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ManifestError(code, f"{what} is not valid base64: {exc}") from None


# ---------------------------------------------------------------------- keys
def generate_signing_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as raw bytes (private 32, public 32)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    return (
        private.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()),
        private.public_key().public_bytes(raw, serialization.PublicFormat.Raw),
    )


def generate_sealing_key() -> tuple[bytes, bytes]:
    """A new X25519 key pair as raw bytes: the device keeps the private half."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    private = X25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    return (
        private.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()),
        private.public_key().public_bytes(raw, serialization.PublicFormat.Raw),
    )


def public_key_b64(public_key: bytes) -> str:
    return _b64(public_key)


def parse_public_key(text: Any, what: str = "public key") -> bytes:
    """A raw 32-byte public key from its base64 text, or ``ManifestError``."""
    raw = _unb64(text, what)
    if len(raw) != 32:
        raise ManifestError("malformed", f"{what} must be 32 bytes, got {len(raw)}")
    return raw


# ---------------------------------------------------------------------- manifests
@dataclass(frozen=True)
class Part:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A verified manifest (``verify`` builds it; nothing else should)."""

    team: str
    device: str
    snapshot: str
    generation: int
    issued_at: str
    name: str
    parts: tuple[Part, ...]
    key_id: str
    document: Mapping[str, Any]  # the signed envelope, stored as-is beside the parts

    @property
    def digest(self) -> str:
        """The hash a device reports as its active snapshot: of the signed manifest body."""
        return sha256_hex(canonical_json(self.document["manifest"]))

    def part(self, name: str) -> Part | None:
        return next((p for p in self.parts if p.name == name), None)


def model_part(sha256: str) -> str:
    """The part name of the ONNX model with this SHA-256 (``models/<sha256>.onnx``)."""
    return f"{MODELS_PREFIX}{sha256}.onnx"


def model_hash(part_name: str) -> str | None:
    """The SHA-256 of a model part (None for every other part)."""
    if part_name.startswith(MODELS_PREFIX) and PART_NAME.match(part_name):
        return part_name[len(MODELS_PREFIX) : -len(".onnx")]
    return None


def build_parts(parts: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """The ``parts`` table of a manifest for the given part bodies."""
    table = {}
    for name, body in parts.items():
        if not PART_NAME.match(name):
            raise ManifestError("malformed", f"invalid part name {name!r}")
        table[name] = {"sha256": sha256_hex(body), "size": len(body)}
    return table


def sign(
    *,
    private_key: bytes,
    team: str,
    device: str,
    snapshot: str,
    generation: int,
    issued_at: str,
    name: str,
    parts: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The signed envelope of one target (``parts`` as ``build_parts`` answers)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if generation < 1:
        raise ValueError("generation starts at 1")
    body = {
        "format": FORMAT,
        "team": team,
        "device": device,
        "snapshot": snapshot,
        "generation": generation,
        "issued_at": issued_at,
        "name": name,
        "parts": {k: dict(v) for k, v in parts.items()},
    }
    key = Ed25519PrivateKey.from_private_bytes(private_key)
    public = key.public_key().public_bytes_raw()
    return {
        "manifest": body,
        "key_id": key_id(public),
        "signature": _b64(key.sign(canonical_json(body))),
    }


def verify(
    envelope: Any,
    *,
    trusted_keys: Iterable[bytes],
    team: str,
    device: str,
    min_generation: int = 0,
) -> Manifest:
    """Check a signed envelope and answer its manifest, or raise ``ManifestError``.

    Refused, in this order: a document that is not an envelope (``malformed``), a key the
    device never pinned (``unknown_key``), a bad signature (``bad_signature``: tampered or
    unsigned), another team or another device (``wrong_team`` / ``wrong_device``: a target
    replayed across tenants or devices), a generation below ``min_generation`` (``stale``:
    a replayed or older target), and parts that are not a valid table (``malformed``).
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(envelope, Mapping):
        raise ManifestError("malformed", "the signed manifest must be a JSON object")
    body = envelope.get("manifest")
    if not isinstance(body, Mapping):
        raise ManifestError("unsigned", "no manifest in the signed document")
    if "signature" not in envelope:
        raise ManifestError("unsigned", "the manifest carries no signature")
    signature = _unb64(envelope.get("signature"), "signature", "bad_signature")
    keys = {key_id(k): k for k in trusted_keys}
    kid = envelope.get("key_id")
    if not isinstance(kid, str) or kid not in keys:
        raise ManifestError(
            "unknown_key", f"signed with key {kid!r}, which this device does not trust"
        )
    try:
        Ed25519PublicKey.from_public_bytes(keys[kid]).verify(signature, canonical_json(body))
    except (InvalidSignature, ValueError):
        raise ManifestError("bad_signature", "the manifest signature does not verify") from None
    if body.get("format") != FORMAT:
        raise ManifestError("malformed", f"unsupported manifest format {body.get('format')!r}")
    if body.get("team") != team:
        raise ManifestError("wrong_team", f"the manifest is for team {body.get('team')!r}")
    if body.get("device") != device:
        raise ManifestError("wrong_device", "the manifest was issued to another device")
    generation = body.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
        raise ManifestError("malformed", "generation must be a positive integer")
    if generation < min_generation:
        raise ManifestError(
            "stale", f"generation {generation} is older than {min_generation} already accepted"
        )
    raw_parts = body.get("parts")
    if not isinstance(raw_parts, Mapping) or not raw_parts or len(raw_parts) > MAX_PARTS:
        raise ManifestError("malformed", "parts must be a table of 1 to 64 entries")
    if FLOWS_PART not in raw_parts:
        raise ManifestError("malformed", f"the manifest has no {FLOWS_PART}")
    parts = []
    for name, info in sorted(raw_parts.items()):
        if not isinstance(name, str) or not PART_NAME.match(name) or not isinstance(info, Mapping):
            raise ManifestError("malformed", f"invalid part {name!r}")
        digest, size = info.get("sha256"), info.get("size")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ManifestError("malformed", f"part {name}: sha256 must be 64 hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError("malformed", f"part {name}: size must be a non-negative integer")
        parts.append(Part(name, digest, size))
    for field in ("snapshot", "issued_at", "name"):
        if not isinstance(body.get(field), str):
            raise ManifestError("malformed", f"{field} must be a string")
    return Manifest(
        team=team,
        device=device,
        snapshot=body["snapshot"],
        generation=generation,
        issued_at=body["issued_at"],
        name=body["name"],
        parts=tuple(parts),
        key_id=kid,
        document=envelope,
    )


def check_part(part: Part, body: bytes) -> None:
    """Refuse a part body that is not the one the manifest names (truncated, tampered)."""
    if len(body) != part.size:
        raise ManifestError(
            "part_size", f"part {part.name}: {len(body)} bytes, the manifest says {part.size}"
        )
    if sha256_hex(body) != part.sha256:
        raise ManifestError("part_hash", f"part {part.name}: SHA-256 does not match the manifest")


# ---------------------------------------------------------------------- sealed credentials
def _seal_key(shared: bytes, device: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO + device.encode()
    ).derive(shared)


def seal(plaintext: bytes, *, recipient_public_key: bytes, device: str) -> bytes:
    """Encrypt ``plaintext`` so that only the holder of the device's X25519 key opens it:
    ``{"v":1,"epk":b64,"nonce":b64,"data":b64}`` as canonical JSON."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    ephemeral = X25519PrivateKey.generate()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public_key))
    nonce = os.urandom(12)
    data = ChaCha20Poly1305(_seal_key(shared, device)).encrypt(nonce, plaintext, device.encode())
    return canonical_json(
        {
            "v": 1,
            "epk": _b64(ephemeral.public_key().public_bytes_raw()),
            "nonce": _b64(nonce),
            "data": _b64(data),
        }
    )


def unseal(sealed: bytes, *, private_key: bytes, device: str) -> bytes:
    """Open what ``seal`` made for this device, or raise ``ManifestError`` (``sealed``)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    try:
        doc = json.loads(sealed)
    except (ValueError, UnicodeDecodeError):
        raise ManifestError("sealed", "sealed credentials are not JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        raise ManifestError("sealed", "unsupported sealed credentials")
    epk = _unb64(doc.get("epk"), "epk", "sealed")
    nonce = _unb64(doc.get("nonce"), "nonce", "sealed")
    data = _unb64(doc.get("data"), "data", "sealed")
    if len(epk) != 32 or len(nonce) != 12:
        raise ManifestError("sealed", "sealed credentials have a malformed key or nonce")
    shared = X25519PrivateKey.from_private_bytes(private_key).exchange(
        X25519PublicKey.from_public_bytes(epk)
    )
    try:
        return ChaCha20Poly1305(_seal_key(shared, device)).decrypt(nonce, data, device.encode())
    except InvalidTag:
        raise ManifestError(
            "sealed", "sealed credentials do not open with this device's key"
        ) from None


# ---------------------------------------------------------------------- key rotation
def sign_keys(*, private_key: bytes, team: str, keys: Iterable[bytes]) -> dict[str, Any]:
    """The team's current signing keys, signed by a key devices already trust (rotation)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    body = {"format": "manifold-keys/1", "team": team, "keys": [_b64(k) for k in keys]}
    key = Ed25519PrivateKey.from_private_bytes(private_key)
    return {
        "keys": body,
        "key_id": key_id(key.public_key().public_bytes_raw()),
        "signature": _b64(key.sign(canonical_json(body))),
    }


def verify_keys(document: Any, *, trusted_keys: Iterable[bytes], team: str) -> list[bytes]:
    """The key list of a ``sign_keys`` document signed by a trusted key, or ``ManifestError``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), Mapping):
        raise ManifestError("malformed", "the key list must be a signed JSON object")
    body = document["keys"]
    trusted = {key_id(k): k for k in trusted_keys}
    kid = document.get("key_id")
    if not isinstance(kid, str) or kid not in trusted:
        raise ManifestError(
            "unknown_key", "the key list is signed by a key this device does not trust"
        )
    signature = _unb64(document.get("signature"), "signature", "bad_signature")
    try:
        Ed25519PublicKey.from_public_bytes(trusted[kid]).verify(signature, canonical_json(body))
    except (InvalidSignature, ValueError):
        raise ManifestError("bad_signature", "the key list signature does not verify") from None
    if body.get("format") != "manifold-keys/1" or body.get("team") != team:
        raise ManifestError("wrong_team", "the key list is not this team's")
    raw = body.get("keys")
    if not isinstance(raw, list) or not raw or len(raw) > 8:
        raise ManifestError("malformed", "the key list must hold 1 to 8 keys")
    return [parse_public_key(k, "signing key") for k in raw]
