"""Node credentials: kept apart from the flows, encrypted at rest, never logged.

File ``<userdir>/flows_cred.json``. Our format (AEAD, tamper-evident)::

    {"$manifold": 1, "kdf": "scrypt", "n": 16384, "r": 8, "p": 1,
     "salt": "<b64>", "nonce": "<b64>", "data": "<b64 AES-256-GCM ciphertext+tag>"}

with the key derived from the credential secret by scrypt; the plaintext is
``{"<node id>": {"<field>": "<value>", ...}}``. Node-RED's own file is read too when given the
same secret: ``{"$": hex(iv16) + base64(aes-256-ctr ciphertext)}`` with
``key = sha256(credentialSecret)`` (and the plain, unencrypted object Node-RED writes when
``credentialSecret`` is ``false``). Saving always writes our format.

A wrong secret or a modified file is a hard ``CredentialError``: nothing is guessed or
silently reset.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_runner.runtime.context_file import atomic_write
from edge_runner.runtime.paths import CREDENTIALS_FILE

if TYPE_CHECKING:
    from edge_runner.contract import Node
    from edge_runner.runtime.flows import FlowModel

FILE_NAME = CREDENTIALS_FILE
_AAD = b"manifold-credentials-v1"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
KEEP = "__PWRD__"  # the editor's placeholder for "unchanged password"


class CredentialError(Exception):
    """The credential file cannot be read with this secret, or was tampered with."""


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=128 * 1024 * 1024
    )


def encrypt(secret: str, creds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = os.urandom(16), os.urandom(12)
    key = _scrypt(secret, salt, **_SCRYPT)
    data = AESGCM(key).encrypt(nonce, json.dumps(creds).encode(), _AAD)
    return {
        "$manifold": 1,
        "kdf": "scrypt",
        **_SCRYPT,
        "salt": base64.b64encode(salt).decode(),
        "nonce": base64.b64encode(nonce).decode(),
        "data": base64.b64encode(data).decode(),
    }


def decrypt(secret: str | None, stored: Any) -> dict[str, dict[str, Any]]:
    """Decode any supported credential file content into ``{node id: {field: value}}``."""
    if not isinstance(stored, dict):
        raise CredentialError("credential file is not a JSON object")
    if "$manifold" in stored:
        return _decrypt_manifold(secret, stored)
    if set(stored) == {"$"}:
        return _decrypt_node_red(secret, stored["$"])
    if all(isinstance(v, dict) for v in stored.values()):  # Node-RED with encryption disabled
        return {str(k): dict(v) for k, v in stored.items()}
    raise CredentialError("unrecognised credential file format")


def _decrypt_manifold(secret: str | None, stored: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not secret:
        raise CredentialError("credentials are encrypted but no credential secret is set")
    try:
        salt = base64.b64decode(stored["salt"], validate=True)
        nonce = base64.b64decode(stored["nonce"], validate=True)
        data = base64.b64decode(stored["data"], validate=True)
        n, r, p = int(stored["n"]), int(stored["r"]), int(stored["p"])
        if stored.get("kdf") != "scrypt" or n > 2**20 or r > 16 or p > 4:
            raise ValueError("unsupported key derivation parameters")
        key = _scrypt(secret, salt, n, r, p)
        plain = AESGCM(key).decrypt(nonce, data, _AAD)
    except InvalidTag as exc:
        raise CredentialError("wrong credential secret or tampered credential file") from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise CredentialError(f"malformed credential file: {exc}") from exc
    return _as_creds(plain)


def _decrypt_node_red(secret: str | None, blob: Any) -> dict[str, dict[str, Any]]:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if not secret:
        raise CredentialError("Node-RED credentials are encrypted but no secret was given")
    if not isinstance(blob, str) or len(blob) < 32:
        raise CredentialError("malformed Node-RED credential file")
    try:
        iv = bytes.fromhex(blob[:32])
        data = base64.b64decode(blob[32:])
    except ValueError as exc:
        raise CredentialError(f"malformed Node-RED credential file: {exc}") from exc
    key = hashlib.sha256(secret.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    # CTR has no integrity check: a wrong secret shows up as garbage that is not JSON.
    return _as_creds(plain, "wrong credential secret for the Node-RED credential file")


def encrypt_node_red(secret: str, creds: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Node-RED's format (for exporting to, and testing against, Node-RED)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16)
    key = hashlib.sha256(secret.encode()).digest()
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    data = encryptor.update(json.dumps(creds).encode()) + encryptor.finalize()
    return {"$": iv.hex() + base64.b64encode(data).decode()}


def _as_creds(
    plain: bytes, failure: str = "credential payload is not valid"
) -> dict[str, dict[str, Any]]:
    try:
        value = json.loads(plain.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CredentialError(failure) from exc
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise CredentialError(failure)
    return value


class CredentialStore:
    """The credentials of every node, keyed by node id. ``path=None`` keeps them in memory."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, secret: str | None = None
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.secret = secret
        self.creds: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.is_file():
            try:
                stored = json.loads(self.path.read_text("utf-8"))
            except ValueError as exc:
                raise CredentialError(f"credential file is not JSON: {exc}") from exc
            self.creds = decrypt(secret, stored)

    @classmethod
    def in_userdir(cls, userdir: str | os.PathLike[str], secret: str | None) -> CredentialStore:
        return cls(Path(userdir) / FILE_NAME, secret)

    def get(self, node_id: str) -> dict[str, Any]:
        return self.creds.get(node_id, {})

    def merge(self, node_id: str, incoming: dict[str, Any], fields: tuple[str, ...]) -> bool:
        """Apply credentials sent with a deploy, Node-RED style: ``__PWRD__`` keeps the stored
        value, ``""`` removes it, anything else replaces it. ``fields`` limits the names kept
        (empty = keep every name). Returns whether anything changed."""
        current = dict(self.creds.get(node_id, {}))
        before = dict(current)
        for name, value in incoming.items():
            if fields and name not in fields:
                continue
            if value == KEEP:
                continue
            if value in ("", None):
                current.pop(name, None)
            else:
                current[name] = value
        if current:
            self.creds[node_id] = current
        else:
            self.creds.pop(node_id, None)
        return current != before

    def prune(self, keep: set[str]) -> bool:
        gone = [k for k in self.creds if k not in keep]
        for key in gone:
            del self.creds[key]
        return bool(gone)

    def secrets(self) -> set[str]:
        """Every stored string value (for redaction)."""
        return {
            v for c in self.creds.values() for v in c.values() if isinstance(v, str) and len(v) >= 3
        }

    def encode(self, creds: dict[str, dict[str, Any]] | None = None) -> bytes:
        """The credential file's content for ``creds`` (default: the current set), encrypted."""
        if not self.secret:
            raise CredentialError("refusing to write credentials without a credential secret")
        return json.dumps(encrypt(self.secret, self.creds if creds is None else creds)).encode()

    def save(self, creds: dict[str, dict[str, Any]] | None = None) -> None:
        """Write the file on its own (engines without a deployer; the deployer commits it with
        the flows instead)."""
        if self.path is None:
            return
        atomic_write(self.path, self.encode(creds))


# ------------------------------------------------------------------------------ deploys


def merge_env_credentials(store: CredentialStore, flows: Any) -> tuple[CredentialStore, bool]:
    """A scratch copy of ``store`` plus the credentials a deploy sends for tabs, groups,
    subflows and subflow instances (their ``cred`` env entries), needed before the flows are
    parsed; and whether they changed anything."""
    scratch = CredentialStore()
    scratch.creds = {k: dict(v) for k, v in store.creds.items()}
    changed = False
    for raw in flows if isinstance(flows, list) else ():
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            continue
        incoming, kind = raw.get("credentials"), str(raw.get("type"))
        if not isinstance(incoming, dict) or not incoming:
            continue
        if kind in ("tab", "group", "subflow") or kind.startswith("subflow:"):
            changed |= scratch.merge(raw["id"], incoming, ())
    return scratch, changed


def merge_node_credentials(
    scratch: CredentialStore, model: FlowModel, node_class: Callable[[str], type[Node] | None]
) -> tuple[dict[str, dict[str, Any]], bool]:
    """The credential set after this deploy (not committed yet) and whether it changed: each
    node keeps its type's credential names; ids no longer in the flows are dropped."""
    changed = False
    for node_id, definition in model.nodes.items():
        incoming = definition.raw.get("credentials")
        if isinstance(incoming, dict) and incoming and node_id not in model.instances:
            cls = node_class(definition.type)
            names = cls.SPEC.credentials if cls is not None else ()
            changed |= scratch.merge(node_id, incoming, names)
    changed |= scratch.prune(model.known)
    return scratch.creds, changed
