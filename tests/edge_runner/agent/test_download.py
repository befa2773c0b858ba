"""Fetching a target's parts: resume after a cut, size bound, hash check.

The bundle server is ``PlatformDouble`` (an in-test aiohttp server speaking the bundle
endpoint with ``Range``); end-to-end downloads from the real platform are tested under
tests/apps/devices.
"""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest

from edge_runner.agent.download import MAX_RESUMES, DownloadError, DownloadStats, fetch_bundle
from edge_runner.protocol import manifest
from edge_runner.protocol.manifest import Manifest, ManifestError
from tests.edge_runner.agent.platform_double import CREDENTIAL, PlatformDouble

HEADERS = {"Authorization": f"Bearer {CREDENTIAL}"}


def verified(platform: PlatformDouble, generation: int, parts: dict[str, bytes]) -> Manifest:
    target = platform.sign_target(generation, parts)
    return manifest.verify(
        target["manifest"],
        trusted_keys=[platform.public_key],
        team=platform.team,
        device=platform.device,
    )


async def fetch(
    platform: PlatformDouble, m: Manifest, directory: Path, max_resumes: int = MAX_RESUMES
) -> DownloadStats:
    async with aiohttp.ClientSession() as session:
        return await fetch_bundle(
            session, platform.url, m, directory, headers=HEADERS, max_resumes=max_resumes
        )


async def test_parts_arrive_whole(platform: PlatformDouble, tmp_path: Path) -> None:
    model = os.urandom(300_000)
    parts = {"flows.json": b"[]", "settings.json": b"{}", f"models/{'a' * 64}.onnx": model}
    m = verified(platform, 3, parts)
    await fetch(platform, m, tmp_path / "3")
    for name, body in parts.items():
        assert (tmp_path / "3" / name).read_bytes() == body


async def test_a_cut_download_resumes_with_range_and_little_overhead(
    platform: PlatformDouble, tmp_path: Path
) -> None:
    body = os.urandom(2_000_000)
    m = verified(platform, 4, {"flows.json": b"[]", "big.bin": body})
    platform.cut[(4, "big.bin")] = 1_300_000
    stats = await fetch(platform, m, tmp_path / "4")
    assert (tmp_path / "4" / "big.bin").read_bytes() == body
    # parts go in name order: big.bin, cut, resumed, then flows.json
    first, resumed, _ = platform.ranges
    assert first is None
    assert resumed is not None
    assert resumed.startswith("bytes=")
    resumed_at = int(resumed.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 1_300_000
    overhead = (platform.bytes_sent - len(body) - 2) / (len(body) + 2)
    print(
        f"\nresumed download: {platform.bytes_sent} bytes sent for {len(body) + 2}: "
        f"overhead {overhead:.2%} (family 16 target <= 10 %); stats {stats}"
    )
    assert stats.resumed == 1
    assert platform.bytes_sent - (len(body) + 2) <= len(body) // 10


async def test_a_partial_file_left_by_a_killed_agent_is_resumed(
    platform: PlatformDouble, tmp_path: Path
) -> None:
    body = os.urandom(500_000)
    m = verified(platform, 5, {"flows.json": body})
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "flows.json").write_bytes(body[:200_000])
    await fetch(platform, m, tmp_path / "5")
    assert platform.ranges == ["bytes=200000-"]
    assert platform.bytes_sent == 300_000
    assert (tmp_path / "5" / "flows.json").read_bytes() == body


async def test_a_server_without_range_support_sends_it_all_again(
    platform: PlatformDouble, tmp_path: Path
) -> None:
    body = os.urandom(100_000)
    m = verified(platform, 6, {"flows.json": body})
    platform.no_range = True
    (tmp_path / "6").mkdir()
    (tmp_path / "6" / "flows.json").write_bytes(body[:40_000])
    await fetch(platform, m, tmp_path / "6")
    assert (tmp_path / "6" / "flows.json").read_bytes() == body


async def test_a_tampered_part_is_refused_and_removed(
    platform: PlatformDouble, tmp_path: Path
) -> None:
    m = verified(platform, 7, {"flows.json": b'[{"id":"a"}]'})
    platform.bundles[(7, "flows.json")] = b'[{"id":"b"}]'
    with pytest.raises(ManifestError) as caught:
        await fetch(platform, m, tmp_path / "7")
    assert caught.value.code == "part_hash"
    assert not (tmp_path / "7" / "flows.json").exists()


async def test_a_truncated_part_is_refused(platform: PlatformDouble, tmp_path: Path) -> None:
    m = verified(platform, 8, {"flows.json": b"[" + b" " * 1000 + b"]"})
    platform.bundles[(8, "flows.json")] = b"[]"
    with pytest.raises(ManifestError) as caught:
        await fetch(platform, m, tmp_path / "8")
    assert caught.value.code == "part_size"
    assert not (tmp_path / "8" / "flows.json").exists()


async def test_a_part_larger_than_its_manifest_is_cut_off_at_the_bound(
    platform: PlatformDouble, tmp_path: Path
) -> None:
    m = verified(platform, 9, {"flows.json": b"[]"})
    platform.bundles[(9, "flows.json")] = b"[]" + b" " * 5_000_000
    with pytest.raises(ManifestError) as caught:
        await fetch(platform, m, tmp_path / "9")
    assert caught.value.code == "part_size"
    assert not (tmp_path / "9" / "flows.json").exists()


async def test_a_missing_part_is_a_download_error(platform: PlatformDouble, tmp_path: Path) -> None:
    m = verified(platform, 10, {"flows.json": b"[]"})
    del platform.bundles[(10, "flows.json")]
    with pytest.raises(DownloadError) as caught:
        await fetch(platform, m, tmp_path / "10")
    assert caught.value.code == "not_found"


async def test_repeated_cuts_give_up_after_max_resumes(
    platform: PlatformDouble, tmp_path: Path
) -> None:
    body = os.urandom(100_000)
    m = verified(platform, 11, {"flows.json": body})

    class AlwaysCut(dict[tuple[int, str], int]):
        def pop(self, key: object, default: object = None) -> int:  # every request is cut
            return 10

    platform.cut = AlwaysCut()
    with pytest.raises(DownloadError) as caught:
        await fetch(platform, m, tmp_path / "11", max_resumes=2)
    assert caught.value.code == "network"
    assert len(platform.ranges) == 3
    # what arrived is kept for the next attempt
    assert (tmp_path / "11" / "flows.json").stat().st_size == 30
