"""The agent's snapshot store (device-protocol.md, "Data directory"; RELIABILITY.md families
15 and 17): complete installs only, ``agent.json`` never naming an incomplete snapshot, the last
three kept, leftovers cleaned at boot with resumable downloads kept, and a full disk (a real
2 MiB tmpfs) refused with a clear error while the old snapshot keeps running."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_runner.agent.store import MANIFEST_FILE, Handled, SnapshotStore, StoreError
from edge_runner.protocol.manifest import build_parts, model_part, sha256_hex, sign, verify
from edge_runner.runtime.paths import RunnerPaths
from tests.edge_runner.agent.test_apply import bundle, download, start_device, stop_device


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(RunnerPaths(tmp_path / "root"))


async def install(store: SnapshotStore, generation: int) -> Path:
    manifest, parts = bundle(generation)
    download(store, generation, parts)
    return await store.install(generation, manifest.document)


def complete(store: SnapshotStore, generation: int) -> bool:
    """Every part of an installed generation is there with its manifest's size and hash."""
    doc = store.manifest(generation)
    for name, info in doc["manifest"]["parts"].items():
        body = store.part(generation, name)
        if body is None or len(body) != info["size"] or sha256_hex(body) != info["sha256"]:
            return False
    return True


def leftovers(root: Path) -> list[Path]:
    return [
        p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".agent.json.")
    ]


async def test_an_install_is_complete_and_the_state_names_installed_snapshots_only(
    store: SnapshotStore,
) -> None:
    target = await install(store, 4)
    assert target == store.paths.snapshots / "4"
    assert (target / MANIFEST_FILE).is_file()
    assert complete(store, 4)
    assert not (store.paths.snapshots_incoming / "4").exists()
    assert store.installed() == [4]
    store.record(active=4, last_good=4, handled=Handled(4, "applied"), min_generation=4)
    with pytest.raises(StoreError, match="generation 5 is not installed") as refused:
        store.record(active=5)
    assert refused.value.code == "incomplete"
    reread = SnapshotStore(store.paths).state
    assert (reread.active, reread.last_good, reread.min_generation) == (4, 4, 4)
    assert reread.handled == Handled(4, "applied")
    assert await store.install(4, bundle(4)[0].document) == target  # idempotent


@pytest.mark.parametrize(
    ("damage", "code", "kept"),
    [
        ("missing", "incomplete", False),
        ("short", "part_size", True),
        ("long", "part_size", False),
        ("tampered", "part_hash", False),
    ],
)
async def test_an_incomplete_or_altered_download_is_not_installed(
    store: SnapshotStore, damage: str, code: str, kept: bool
) -> None:
    manifest, parts = bundle(2)
    download(store, 2, parts)
    part = store.paths.snapshots_incoming / "2" / "flows.json"
    body = parts["flows.json"]
    if damage == "missing":
        part.unlink()
    elif damage == "short":
        part.write_bytes(body[:10])
    elif damage == "long":
        part.write_bytes(body + b"   ")
    else:
        part.write_bytes(body.replace(b"python-function", b"python-functiom"))
    with pytest.raises(StoreError) as refused:
        await store.install(2, manifest.document)
    assert refused.value.code == code
    assert store.installed() == []
    assert part.exists() is kept  # a short part resumes; a wrong one is fetched again
    part.write_bytes(body)
    await store.install(2, manifest.document)
    assert complete(store, 2)


async def test_the_last_three_plus_active_and_last_good_are_kept(store: SnapshotStore) -> None:
    for g in range(1, 8):
        await install(store, g)
    store.record(active=2, last_good=1)
    assert store.prune() == [3, 4]
    assert store.installed() == [1, 2, 5, 6, 7]


async def test_boot_cleans_leftovers_and_keeps_a_resumable_download(store: SnapshotStore) -> None:
    await install(store, 1)
    store.record(active=1, last_good=1)
    paths = store.paths
    (paths.root / ".agent.json.abc123.tmp").write_bytes(b"{")
    half = paths.snapshots / "2"
    half.mkdir()
    (half / "flows.json").write_bytes(b"[]")  # renamed without manifest: impossible, but safe
    manifest, parts = bundle(3)
    download(store, 3, parts)
    current = paths.snapshots_incoming / "3"
    (current / "flows.json").write_bytes(parts["flows.json"][:5])
    (current / "settings.json").write_bytes(parts["settings.json"] + b"junk")
    (current / "stray.bin").write_bytes(b"x")
    download(store, 9, bundle(9)[1])
    sizes = {p.name: p.size for p in manifest.parts}
    removed = store.clean(resume=3, sizes=sizes)
    assert set(removed) >= {
        paths.root / ".agent.json.abc123.tmp",
        half,
        paths.snapshots_incoming / "9",
        current / "settings.json",
        current / "stray.bin",
    }
    assert sorted(p.name for p in current.iterdir()) == ["credentials.sealed", "flows.json"]
    assert (current / "flows.json").read_bytes() == parts["flows.json"][:5]
    assert store.installed() == [1]
    assert complete(store, 1)
    assert SnapshotStore(paths).state.active == 1


def test_a_damaged_state_file_is_a_clear_error(tmp_path: Path) -> None:
    paths = RunnerPaths(tmp_path / "root")
    paths.root.mkdir()
    paths.agent_state.write_text('{"active": "seven"}')
    with pytest.raises(StoreError, match="active must be a generation") as refused:
        SnapshotStore(paths)
    assert refused.value.code == "corrupt_state"
    paths.agent_state.write_text("{not json")
    with pytest.raises(StoreError, match=r"agent\.json"):
        SnapshotStore(paths)


@contextlib.contextmanager
def small_disk(where: Path, size: str = "2m") -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the file system is full; answers the bytes written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 4096, 512, 1):
            while True:
                try:
                    written += os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return written


async def test_a_full_disk_refuses_the_install_and_the_old_snapshot_keeps_running(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        device = await start_device(disk / "root", poll_seconds=0.5)
        try:
            assert (await device.apply(1)).outcome == "applied"
            manifest, parts = bundle(2)
            download(device.store, 2, parts)
            filled = fill(disk / "filler")
            outcome = await device.applier.apply(manifest)
            print(f"\nfamily 17: disk filled with {filled} bytes; outcome {outcome}")
            assert outcome.outcome == "failed"
            assert outcome.reason.startswith("disk_full: generation 2 could not be installed")
            assert "no space left" in outcome.reason
            assert outcome.active == 1
            state = SnapshotStore(device.paths).state
            assert (state.active, state.last_good) == (1, 1)
            assert state.handled is not None
            assert (state.handled.generation, state.handled.outcome) == (2, "failed")
            assert not (device.paths.snapshots_incoming / "2").exists()
            assert not (device.paths.snapshots / "2").exists()
            assert leftovers(device.paths.root) == []
            assert await device.gen() == {"generation": 1, "line": "line-1", "secret": "canary-1"}
            assert (await device.client.state())["state"] == "start"

            # the platform marks generation 2 failed; after freeing space the next target runs
            (disk / "filler").unlink()
            again = await device.apply(3)
            assert again.outcome == "applied", again
            assert (await device.gen())["generation"] == 3
            assert json.loads(device.paths.agent_state.read_bytes())["active"] == 3
            assert leftovers(device.paths.root) == []
        finally:
            await stop_device(device)


def with_models(generation: int, models: dict[str, bytes]) -> tuple[Any, dict[str, bytes]]:
    """``bundle(generation)`` plus model parts, signed as the platform signs them."""
    from tests.edge_runner.agent.test_apply import DEVICE, SIGNING_PRIVATE, SIGNING_PUBLIC, TEAM

    _, parts = bundle(generation)
    parts = {**parts, **{model_part(sha256_hex(data)): data for data in models.values()}}
    document = sign(
        private_key=SIGNING_PRIVATE,
        team=TEAM,
        device=DEVICE,
        snapshot=f"snp{generation}",
        generation=generation,
        issued_at="2026-01-01T00:00:00Z",
        name=f"v{generation}",
        parts=build_parts(parts),
    )
    return verify(document, trusted_keys=[SIGNING_PUBLIC], team=TEAM, device=DEVICE), parts


async def test_models_are_placed_by_hash_and_removed_once_no_snapshot_ships_them(
    store: SnapshotStore,
) -> None:
    first, second = b"model one" * 100, b"model two" * 100
    sha1, sha2 = sha256_hex(first), sha256_hex(second)
    manifest, parts = with_models(1, {"a": first})
    download(store, 1, parts)
    await store.install(1, manifest.document)
    assert store.place_models(1) == [sha1]
    placed = store.paths.models / f"{sha1}.onnx"
    assert placed.read_bytes() == first
    assert store.place_models(1) == [sha1]  # idempotent
    for g in range(2, 6):
        manifest, parts = with_models(g, {"b": second})
        download(store, g, parts)
        await store.install(g, manifest.document)
        store.place_models(g)
    store.record(active=5, last_good=5)
    assert store.prune_models() == []  # generation 1 is still installed
    assert store.prune() == [1, 2]
    assert store.prune_models() == [sha1]
    assert sorted(p.name for p in store.paths.models.iterdir()) == [f"{sha2}.onnx"]
    assert not leftovers(store.paths.root)


async def test_an_altered_model_download_is_not_installed(store: SnapshotStore) -> None:
    data = b"model bytes" * 50
    manifest, parts = with_models(3, {"a": data})
    name = model_part(sha256_hex(data))
    parts[name] = data[:-1] + b"!"
    download(store, 3, parts)
    with pytest.raises(StoreError) as refused:
        await store.install(3, manifest.document)
    assert refused.value.code == "part_hash"
    assert store.installed() == []
    assert not store.paths.models.exists()
