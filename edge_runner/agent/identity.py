"""The device's identity: registration with the platform, the files that keep it, the wipe.

``edge-runner register`` makes an X25519 key pair (the private half never leaves the device),
posts the public half with the provisioning token to ``/api/v1/devices/register/`` and keeps
what the platform answers under ``<root>/device/`` (docs/device-protocol.md, "Identity and
registration")::

    device/identity.json   platform URL, device id, team, name, pinned signing keys, sealing key
    device/credential      the device credential (bearer token of the link and the Admin API)

Both files are 0600 in a 0700 directory and written atomically: a power cut leaves the old
identity or the new one. ``wipe`` is the decommission: the identity, the installed snapshots,
``agent.json`` and every secret of the runner (``RunnerPaths.secrets()``) go.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import shutil
import socket
import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from edge_runner.lib.fsutil import atomic_write_bytes, fsync_dir
from edge_runner.protocol import link, manifest
from edge_runner.runtime.paths import RunnerPaths

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"
IDENTITY_FORMAT = "manifold-device-identity/1"
REGISTER_TIMEOUT_SECONDS = 30.0
# A registration answer is a few keys and names; anything bigger is not our platform.
MAX_ANSWER_BYTES = 64 * 1024


class IdentityError(Exception):
    """Registration refused or the stored identity unusable; the message says what to do."""


# ---------------------------------------------------------------------- helpers
def platform_url(url: str) -> str:
    """The platform's base URL (scheme and host, no trailing slash), or ``IdentityError``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise IdentityError(f"--url must be an http(s) URL of the platform, got {url!r}")
    if parts.query or parts.fragment:
        raise IdentityError(f"--url must not carry a query or fragment, got {url!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def ssl_context(url: str, ca_file: str | None) -> ssl.SSLContext | None:
    """Certificate verification on (system trust, or ``ca_file`` alone); None for http."""
    if not url.startswith("https:"):
        return None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise IdentityError(f"cannot load the CA file {ca_file}: {exc}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise IdentityError(f"{what} is missing from the stored identity")
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        raise IdentityError(f"{what} in the stored identity is not base64") from None


def _write_private(path: Path, data: bytes) -> None:
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    atomic_write_bytes(path, data, mode=0o600)


def _error_message(status: int, body: Any, retry_after: str | None) -> str:
    detail = body.get("message") if isinstance(body, dict) else None
    if status == 401:
        return (
            "the platform refused the token: it is unknown, expired, revoked or used up "
            "(ask for a new provisioning token or registration code)"
        )
    if status == 400:
        return f"the platform refused the registration as malformed: {detail or body}"
    if status == 429:
        wait = f" in {retry_after} s" if retry_after else " later"
        return f"too many registration attempts: try again{wait}"
    if status == 404:
        return "no device registration at this URL: is --url the platform's address?"
    return f"the platform answered HTTP {status}: {detail or 'unexpected answer'}"


# ---------------------------------------------------------------------- the identity
@dataclass(frozen=True)
class Identity:
    """Who this device is to the platform, and the keys it trusts."""

    platform_url: str
    device_id: str
    team: str
    name: str
    signing_keys: tuple[bytes, ...]
    sealing_private_key: bytes
    credential: str
    ca_file: str | None = None
    heartbeat_seconds: float = link.DEFAULT_HEARTBEAT_SECONDS

    # ------------------------------------------------------------------ urls
    def http_url(self, path: str) -> str:
        return self.platform_url + path

    @property
    def link_url(self) -> str:
        base = self.platform_url
        scheme = "wss" if base.startswith("https:") else "ws"
        return scheme + base[base.index(":") :] + link.LINK_PATH

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential}"}

    def ssl(self) -> ssl.SSLContext | None:
        return ssl_context(self.platform_url, self.ca_file)

    # ------------------------------------------------------------------ storage
    def to_document(self) -> dict[str, Any]:
        return {
            "format": IDENTITY_FORMAT,
            "platform_url": self.platform_url,
            "device_id": self.device_id,
            "team": self.team,
            "name": self.name,
            "signing_keys": [_b64(k) for k in self.signing_keys],
            "sealing_private_key": _b64(self.sealing_private_key),
            "ca_file": self.ca_file,
            "heartbeat_seconds": self.heartbeat_seconds,
        }

    def save(self, paths: RunnerPaths) -> None:
        """Write the credential, then the identity (the identity's presence means complete)."""
        _write_private(paths.device_credential, self.credential.encode())
        _write_private(paths.identity, manifest.canonical_json(self.to_document()))

    def with_signing_keys(self, keys: list[bytes]) -> Identity:
        return replace(self, signing_keys=tuple(keys))

    @classmethod
    def exists(cls, paths: RunnerPaths) -> bool:
        return paths.identity.exists() or paths.device_credential.exists()

    @classmethod
    def load(cls, paths: RunnerPaths) -> Identity:
        """The stored identity, or ``IdentityError`` saying how to register."""
        where = paths.identity
        try:
            doc = json.loads(where.read_bytes())
            credential = paths.device_credential.read_text().strip()
        except FileNotFoundError:
            raise IdentityError(
                f"this device is not registered (no {where}): run `edge-runner register`"
            ) from None
        except (OSError, ValueError) as exc:
            raise IdentityError(f"cannot read the device identity {where}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != IDENTITY_FORMAT:
            raise IdentityError(f"{where} is not a device identity of this agent")
        fields: dict[str, str] = {}
        for key in ("platform_url", "device_id", "team", "name"):
            value = doc.get(key)
            if not isinstance(value, str) or (key != "name" and not value):
                raise IdentityError(f"{where}: {key} is missing")
            fields[key] = value
        keys = doc.get("signing_keys")
        if not isinstance(keys, list) or not keys:
            raise IdentityError(f"{where}: no pinned signing keys")
        if not credential:
            raise IdentityError(f"{paths.device_credential} is empty: register again")
        heartbeat = doc.get("heartbeat_seconds", link.DEFAULT_HEARTBEAT_SECONDS)
        ca_file = doc.get("ca_file")
        return cls(
            platform_url=fields["platform_url"],
            device_id=fields["device_id"],
            team=fields["team"],
            name=fields["name"],
            signing_keys=tuple(_unb64(k, "a signing key") for k in keys),
            sealing_private_key=_unb64(doc.get("sealing_private_key"), "the sealing key"),
            credential=credential,
            ca_file=ca_file if isinstance(ca_file, str) else None,
            heartbeat_seconds=link.heartbeat_interval(heartbeat),
        )

    # ------------------------------------------------------------------ registration
    @classmethod
    async def register(
        cls,
        url: str,
        token: str,
        paths: RunnerPaths,
        name: str | None = None,
        *,
        ca_file: str | None = None,
        force: bool = False,
        time_limit: float = REGISTER_TIMEOUT_SECONDS,
    ) -> Identity:
        """Register this device with the platform at ``url`` and store its identity."""
        base = platform_url(url)
        token = token.strip()
        if not token:
            raise IdentityError("--token is empty")
        if cls.exists(paths) and not force:
            raise IdentityError(
                f"this data directory already holds a device identity ({paths.device}); "
                "register again with --force to replace it"
            )
        context = ssl_context(base, ca_file)
        private, public = manifest.generate_sealing_key()
        request: dict[str, Any] = {
            "token": token,
            "sealing_key": manifest.public_key_b64(public),
            "agent_version": AGENT_VERSION,
            "hostname": socket.gethostname(),
        }
        if name:
            request["name"] = name
        status, body, retry_after = await _post_json(
            base + link.REGISTER_PATH, request, context, time_limit, ca_file
        )
        if status != 201:
            raise IdentityError(_error_message(status, body, retry_after))
        identity = cls._from_answer(base, body, private, ca_file)
        identity.save(paths)
        log.info("registered as device %s of team %s", identity.device_id, identity.team)
        return identity

    @classmethod
    def _from_answer(cls, base: str, body: Any, private: bytes, ca_file: str | None) -> Identity:
        try:
            device = body["device"]
            credential = body["credential"]
            keys = [manifest.parse_public_key(k, "signing key") for k in body["signing_keys"]]
            heartbeat = body.get("heartbeat_seconds", link.DEFAULT_HEARTBEAT_SECONDS)
            identity = cls(
                platform_url=base,
                device_id=str(device["id"]),
                team=str(device["team"]),
                name=str(device.get("name") or ""),
                signing_keys=tuple(keys),
                sealing_private_key=private,
                credential=credential,
                ca_file=ca_file,
                heartbeat_seconds=link.heartbeat_interval(heartbeat),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IdentityError(f"the platform's registration answer is malformed: {exc}") from None
        if not isinstance(credential, str) or not credential or not keys:
            raise IdentityError("the platform's registration answer lacks a credential or keys")
        return identity

    # ------------------------------------------------------------------ decommission
    @staticmethod
    def wipe(paths: RunnerPaths) -> list[Path]:
        """Remove the identity, the snapshots, ``agent.json`` and every runner secret; answers
        what was removed. Safe to run twice."""
        removed = []
        for path in (
            paths.device,
            paths.snapshots,
            paths.agent_state,
            *paths.secrets(),
        ):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink(missing_ok=True)
            else:
                continue
            removed.append(path)
        if paths.root.is_dir():
            fsync_dir(paths.root)
        return removed


async def _post_json(
    url: str,
    body: dict[str, Any],
    context: ssl.SSLContext | None,
    time_limit: float,
    ca_file: str | None,
) -> tuple[int, Any, str | None]:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=time_limit)) as session,
            session.post(url, json=body, ssl=context if context is not None else True) as answer,
        ):
            raw = await answer.content.read(MAX_ANSWER_BYTES + 1)
            retry_after = answer.headers.get("Retry-After")
            status = answer.status
    except aiohttp.ClientConnectorCertificateError as exc:
        hint = "" if ca_file else " (a private CA? pass it with --ca-file)"
        raise IdentityError(f"the platform's TLS certificate is not trusted{hint}: {exc}") from None
    except aiohttp.ClientSSLError as exc:
        raise IdentityError(f"TLS handshake with the platform failed: {exc}") from None
    except TimeoutError:
        raise IdentityError(f"the platform did not answer within {time_limit:g} s") from None
    except aiohttp.ClientError as exc:
        raise IdentityError(f"cannot reach the platform at {url}: {exc}") from None
    if len(raw) > MAX_ANSWER_BYTES:
        raise IdentityError("the platform's answer is too large: is --url the platform?")
    try:
        parsed = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        parsed = None
        if status == 201:
            raise IdentityError("the platform's answer is not JSON: is --url right?") from None
    return status, parsed, retry_after
