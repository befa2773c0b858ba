"""Power cuts during installs (RELIABILITY.md family 15), on a real loop-mounted ext4.

A writer process installs one generation after another into a store on the loop file system
(parts written like a download, then ``SnapshotStore.install``, then ``record`` and ``prune``)
and prints each generation once ``record`` returned. At a random instant the file system is
shut down without flushing its journal (``EXT4_IOC_SHUTDOWN`` with ``NOLOGFLUSH``, what
``xfs_io -c 'shutdown'`` does for XFS: everything not yet durable is lost, as in a power cut),
the writer is killed and the file system mounted again (journal replay). Then ``agent.json``
must parse and name a completely installed snapshot, never older than the last one the writer
was told is recorded, and every installed snapshot must be complete. 20 rounds in the normal
suite, 100 under ``soak``. Skipped where loop mounts are not permitted.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_runner.agent.store import Handled, SnapshotStore
from edge_runner.runtime.paths import RunnerPaths
from tests.edge_runner.agent.test_apply import bundle, download
from tests.edge_runner.agent.test_store import complete

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2
WORKTREE = Path(__file__).resolve().parents[3]


def writer_main(root: Path) -> None:
    store = SnapshotStore(RunnerPaths(root))
    store.paths.root.mkdir(exist_ok=True)
    store.clean()
    generation = max([0, *store.installed()])
    while True:
        generation += 1
        manifest, parts = bundle(generation)
        download(store, generation, parts)
        asyncio.run(store.install(generation, manifest.document))
        store.record(
            active=generation,
            last_good=generation,
            handled=Handled(generation, "applied"),
            min_generation=generation,
        )
        store.prune()
        print(generation, flush=True)


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


class LoopDisk:
    def __init__(self, base: Path) -> None:
        self.image = base / "ext4.img"
        self.mount = base / "mnt"

    def create(self) -> None:
        self.mount.mkdir()
        with open(self.image, "wb") as image:
            image.truncate(64 * 1024 * 1024)
        run("mkfs.ext4", "-q", "-F", str(self.image))

    def mounted(self) -> bool:
        return subprocess.run(["mountpoint", "-q", str(self.mount)], check=False).returncode == 0

    def up(self) -> None:
        run("mount", "-o", "loop", str(self.image), str(self.mount))

    def down(self) -> None:
        run("umount", str(self.mount))

    def power_cut(self) -> None:
        fd = os.open(self.mount, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
        finally:
            os.close(fd)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[LoopDisk]:
    loop = LoopDisk(tmp_path)
    loop.create()
    try:
        loop.up()
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot loop-mount here: {exc.stderr.decode().strip()}")
    try:
        yield loop
    finally:
        if loop.mounted():
            subprocess.run(["umount", "-l", str(loop.mount)], check=False)


def power_cut_rounds(disk: LoopDisk, count: int) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    root = disk.mount / "root"
    valid = lost_acknowledged = 0
    for _ in range(count):
        if not disk.mounted():
            disk.up()
        writer = subprocess.Popen(
            [sys.executable, "-m", "tests.edge_runner.agent.test_store_power_loss", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=WORKTREE,
        )
        assert writer.stdout is not None
        first = writer.stdout.readline()  # the writer is running: cut at a random instant after
        if not first:
            _, error = writer.communicate()
            raise AssertionError(f"the writer died before its first install: {error[-2000:]!r}")
        time.sleep(rng.uniform(0.0, 0.4))
        disk.power_cut()
        writer.kill()
        writer.wait()
        if writer.stderr is not None:
            writer.stderr.close()
        with writer.stdout:
            printed = [first, *writer.stdout.read().splitlines()]
        acknowledged = max(int(line) for line in printed if line.strip())
        disk.down()
        disk.up()
        store = SnapshotStore(RunnerPaths(root))
        active = store.state.active
        assert active is not None
        assert store.is_installed(active), f"agent.json names {active}, not installed"
        assert all(complete(store, g) for g in store.installed())
        lost_acknowledged += active < acknowledged
        valid += 1
    print(
        f"\nfamily 15: {valid}/{count} power cuts (ext4 shutdown without journal flush) left "
        f"agent.json naming a complete snapshot; acknowledged records lost: {lost_acknowledged}"
    )
    assert lost_acknowledged == 0


@pytest.mark.slow
def test_power_cuts_during_installs_leave_a_complete_snapshot(disk: LoopDisk) -> None:
    power_cut_rounds(disk, 20)


@pytest.mark.soak
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_power_cuts_soak_100_rounds(disk: LoopDisk) -> None:
    power_cut_rounds(disk, 100)


if __name__ == "__main__":
    writer_main(Path(sys.argv[1]))
