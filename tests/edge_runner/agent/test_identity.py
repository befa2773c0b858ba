"""Registration and the device identity files.

The platform here is ``PlatformDouble``, a small in-test aiohttp server that speaks the
registration protocol; end-to-end registration against the real platform is tested under
tests/apps/devices.
"""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest

from edge_runner.agent.identity import Identity, IdentityError
from edge_runner.protocol import manifest
from edge_runner.runtime.paths import RunnerPaths
from tests.edge_runner.agent.platform_double import TOKEN, PlatformDouble, free_port
from tests.edge_runner.connections.certs import make_pki


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_register_stores_identity_and_credential_private(
    platform: PlatformDouble, paths: RunnerPaths
) -> None:
    identity = await Identity.register(platform.url + "/", TOKEN, paths, name="press 4")

    posted = platform.registrations[0]
    assert posted["token"] == TOKEN
    assert posted["name"] == "press 4"
    # the platform got the public half of the key the device keeps
    public = manifest.parse_public_key(posted["sealing_key"])
    sealed = manifest.seal(b"secret", recipient_public_key=public, device=identity.device_id)
    opened = manifest.unseal(
        sealed, private_key=identity.sealing_private_key, device=identity.device_id
    )
    assert opened == b"secret"
    assert mode(paths.device) == 0o700
    assert mode(paths.identity) == 0o600
    assert mode(paths.device_credential) == 0o600
    assert paths.device_credential.read_text() == platform.credential
    assert platform.credential not in paths.identity.read_text()
    loaded = Identity.load(paths)
    assert loaded == identity
    assert loaded.platform_url == platform.url
    assert (loaded.device_id, loaded.team) == (platform.device, platform.team)
    assert loaded.signing_keys == (platform.public_key,)
    assert loaded.link_url == f"ws://127.0.0.1:{platform.port}/ws/devices/link/"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "unknown, expired, revoked or used up"),
        (400, "malformed: sealing_key: not a valid X25519 key"),
        (429, "try again in 30 s"),
    ],
)
async def test_refused_registration_says_why_and_writes_nothing(
    platform: PlatformDouble, paths: RunnerPaths, status: int, expected: str
) -> None:
    platform.register_status = status
    with pytest.raises(IdentityError, match=expected):
        await Identity.register(platform.url, TOKEN, paths)
    assert not paths.device.exists()


async def test_wrong_token_is_refused(platform: PlatformDouble, paths: RunnerPaths) -> None:
    with pytest.raises(IdentityError, match="refused the token"):
        await Identity.register(platform.url, "mft_wrong", paths)
    assert not paths.device.exists()


async def test_unreachable_platform(paths: RunnerPaths) -> None:
    with pytest.raises(IdentityError, match="cannot reach the platform"):
        await Identity.register(f"http://127.0.0.1:{free_port()}", TOKEN, paths)


@pytest.mark.parametrize("url", ["ftp://platform", "platform.example", "https://x/?a=1"])
async def test_url_must_be_the_platform_base(paths: RunnerPaths, url: str) -> None:
    with pytest.raises(IdentityError, match="--url must"):
        await Identity.register(url, TOKEN, paths)


async def test_existing_identity_needs_force(platform: PlatformDouble, paths: RunnerPaths) -> None:
    first = await Identity.register(platform.url, TOKEN, paths)
    with pytest.raises(IdentityError, match="--force"):
        await Identity.register(platform.url, TOKEN, paths)
    assert Identity.load(paths) == first
    second = await Identity.register(platform.url, TOKEN, paths, force=True)
    assert second.sealing_private_key != first.sealing_private_key
    assert Identity.load(paths) == second


async def test_tls_is_verified_and_a_private_ca_is_accepted_with_ca_file(
    paths: RunnerPaths, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    platform = await PlatformDouble().start(ssl_context=context)
    try:
        with pytest.raises(IdentityError, match=r"not trusted.*--ca-file"):
            await Identity.register(platform.url, TOKEN, paths)
        assert not paths.device.exists()
        with pytest.raises(IdentityError, match="not trusted"):
            await Identity.register(platform.url, TOKEN, paths, ca_file=str(pki.other_ca))
        identity = await Identity.register(platform.url, TOKEN, paths, ca_file=str(pki.ca))
        assert Identity.load(paths).ca_file == str(pki.ca)
        assert identity.link_url.startswith("wss://127.0.0.1:")
    finally:
        await platform.stop()


def test_load_without_registration_says_how(paths: RunnerPaths) -> None:
    with pytest.raises(IdentityError, match="edge-runner register"):
        Identity.load(paths)


async def test_load_refuses_a_damaged_identity(
    platform: PlatformDouble, paths: RunnerPaths
) -> None:
    await Identity.register(platform.url, TOKEN, paths)
    paths.identity.write_text('{"format": "something else"}')
    with pytest.raises(IdentityError, match="not a device identity"):
        Identity.load(paths)
    paths.identity.write_text("{not json")
    with pytest.raises(IdentityError, match="cannot read"):
        Identity.load(paths)


async def test_wipe_removes_identity_snapshots_state_and_secrets_only(
    platform: PlatformDouble, paths: RunnerPaths
) -> None:
    await Identity.register(platform.url, TOKEN, paths)
    (paths.snapshots / "3").mkdir(parents=True)
    (paths.snapshots / "3" / "flows.json").write_text("[]")
    paths.agent_state.write_text("{}")
    paths.credentials.write_text("{}")
    paths.runtime_config.write_text("{}")
    paths.ensure(paths.certificates)
    (paths.certificates / "key.pem").write_text("k")
    paths.flows.write_text("[]")
    paths.ensure(paths.context)

    removed = Identity.wipe(paths)

    for gone in (
        paths.device,
        paths.snapshots,
        paths.agent_state,
        paths.credentials,
        paths.runtime_config,
        paths.certificates,
    ):
        assert not gone.exists(), gone
        assert gone in removed
    assert paths.flows.exists()
    assert paths.context.exists()
    assert Identity.wipe(paths) == []
    with pytest.raises(IdentityError):
        Identity.load(paths)
