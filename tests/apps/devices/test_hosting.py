"""Hosted instances with real processes: the local driver starts and stops a runner (the test
stand-in ``hosted_fake_runner.py``, registering over real HTTP), the reconciler registers and
starts what should run, restarts a killed runner, adopts runners after its own restart, stops
what should not run and discards the runners of deleted devices; one instance per application
and a clear error when the port range is used up."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import stat
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from apps.accounts.principal import Principal
from apps.core.errors import Conflict
from apps.devices.hosting import (
    HostingError,
    InstanceSpec,
    LocalProcessDriver,
    PortsExhausted,
    allocate_ports,
    parse_port_range,
    process_start_ticks,
)
from apps.devices.management.commands.hosted_runners import Reconciler
from apps.devices.models import Device, HostedDesired, HostedInstance
from apps.devices.services import device_decommission
from apps.devices.services.hosting import (
    hosted_instance_create,
    hosted_instance_delete,
    hosted_instance_restart,
    hosted_instance_stop,
)
from apps.teams.services import application_create
from tests.conftest import Acme

pytestmark = pytest.mark.django_db(transaction=True)

FAKE = [sys.executable, str(Path(__file__).with_name("hosted_fake_runner.py"))]


def free_port_block(size: int = 8) -> range:
    """``size`` consecutive loopback ports that are free now (tests run in parallel)."""
    for _ in range(200):
        first = random.randrange(20000, 60000)  # not security
        block = range(first, first + size)
        if all(_free(port) for port in block):
            return block
    raise RuntimeError("no free port block")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout} s: {check}")


def alive(pid: int) -> bool:
    return process_start_ticks(pid) is not None


@pytest.fixture
def ports() -> Iterator[range]:
    block = free_port_block()
    with override_settings(HOSTED_PORTS=f"{block.start}-{block.stop - 1}"):
        yield block


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[LocalProcessDriver]:
    made = LocalProcessDriver(tmp_path / "hosted", FAKE, grace_seconds=3)
    yield made
    made.stop_many(made.instances())


@pytest.fixture
def reconciler(driver: LocalProcessDriver, live_server: Any) -> Reconciler:
    return Reconciler(driver, live_server.url, backoff_first=0.0)


def olivia(acme: Acme) -> Principal:
    return Principal.for_user(acme.olivia)


# --- the driver alone -------------------------------------------------------------------------


def test_driver_starts_and_stops_a_runner_on_loopback(
    driver: LocalProcessDriver, ports: range
) -> None:
    codes: list[str] = []

    def code() -> str:
        codes.append("x")
        return "MFR-NOT-A-REAL-CODE"

    spec = InstanceSpec("7", "dev", "http://127.0.0.1:9", ports[0], ports[1], code)
    # Registration fails (nothing listens on port 9): a clear error, nothing running.
    with pytest.raises(HostingError, match=r"Registering with http://127\.0\.0\.1:9 failed"):
        driver.start(spec)
    assert codes == ["x"]
    assert driver.status("7").state == "stopped"

    identity = driver.data_dir("7") / "device" / "identity.json"
    identity.parent.mkdir(parents=True)
    identity.write_text("{}")  # registered before: no new code is issued
    status = driver.start(spec)
    assert status.state == "running"
    assert status.pid is not None
    wait_for(lambda: listening(ports[0]) and listening(ports[1]))
    assert codes == ["x"]
    for directory in (driver.directory("7"), driver.data_dir("7")):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    env = json.loads((driver.data_dir("7") / "env.json").read_text())
    assert not [name for name in env if name.startswith(("MANIFOLD_", "DJANGO_"))]
    assert driver.instances() == ["7"]
    assert driver.start(spec).pid == status.pid  # already running: the same process

    driver.stop("7")
    assert not alive(status.pid)
    assert driver.status("7").state == "stopped"
    assert not listening(ports[0])
    assert any("fake runner stopping" in line for line in driver.logs("7"))
    assert driver.instances() == []


def test_driver_refuses_a_port_another_process_holds(
    driver: LocalProcessDriver, ports: range
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports[1]))
        squatter.listen()
        spec = InstanceSpec("8", "dev", "http://x", ports[0], ports[1], lambda: "code")
        with pytest.raises(HostingError, match=f"Port {ports[1]} on 127.0.0.1 is in use"):
            driver.start(spec)


def test_port_ranges() -> None:
    assert parse_port_range("18800-18899") == range(18800, 18900)
    with pytest.raises(ValueError, match="must look like 18800-18899"):
        parse_port_range("lots")
    with pytest.raises(ValueError, match="within 1024-65535"):
        parse_port_range("80-90")
    assert allocate_ports({18800}, range(18800, 18804)) == (18801, 18802)
    with pytest.raises(PortsExhausted, match="No free ports left"):
        allocate_ports({18800, 18801, 18802}, range(18800, 18804))


# --- services ---------------------------------------------------------------------------------


def test_one_development_instance_per_application(
    acme_world: Acme, ports: range, audit_log: Any
) -> None:
    device = hosted_instance_create(principal=olivia(acme_world), application=acme_world.line_1)
    assert device.hosted_driver == "local"
    assert device.application == acme_world.line_1
    instance = HostedInstance.objects.get(device=device)
    assert (instance.port, instance.status_port) == (ports[0], ports[1])
    assert instance.desired == HostedDesired.RUNNING
    with pytest.raises(Conflict, match="already has a development instance") as refused:
        hosted_instance_create(principal=olivia(acme_world), application=acme_world.line_1)
    assert refused.value.code == "instance_exists"
    assert Device.objects.filter(hosted_driver="local").count() == 1
    assert audit_log(acme_world.team).count("device.hosted_instance.created") == 1


def test_port_range_exhaustion_is_a_clear_error(acme_world: Acme) -> None:
    block = free_port_block(4)
    principal = olivia(acme_world)
    with override_settings(HOSTED_PORTS=f"{block.start}-{block.start + 3}"):
        hosted_instance_create(principal=principal, application=acme_world.line_1)
        second = application_create(
            principal=principal, team=acme_world.team, name="Line 2", slug="line-2"
        )
        hosted_instance_create(principal=principal, application=second)
        third = application_create(
            principal=principal, team=acme_world.team, name="Line 3", slug="line-3"
        )
        with pytest.raises(PortsExhausted, match="MANIFOLD_HOSTED_PORTS") as refused:
            hosted_instance_create(principal=principal, application=third)
    assert refused.value.status_code == 409
    assert refused.value.code == "ports_exhausted"
    assert not Device.objects.filter(application=third).exists()


# --- the reconciler ---------------------------------------------------------------------------


def _running_pid(driver: LocalProcessDriver, name: str) -> int:
    status = driver.status(name)
    assert status.state == "running", status
    assert status.pid is not None
    return status.pid


def test_reconciler_registers_starts_and_restarts_a_killed_runner(
    acme_world: Acme, ports: range, driver: LocalProcessDriver, reconciler: Reconciler
) -> None:
    device = hosted_instance_create(principal=olivia(acme_world), application=acme_world.line_1)
    name = str(device.pk)
    reconciler.tick()
    pid = _running_pid(driver, name)
    device.refresh_from_db()
    assert device.registered_at is not None
    assert device.credential_hash
    assert device.registration_code_hash is None  # the code was used up
    wait_for(lambda: listening(ports[0]))

    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: driver.status(name).state == "exited")
    reconciler.tick()  # sees the crash, starts it again (backoff 0 in this test)
    new_pid = _running_pid(driver, name)
    assert new_pid != pid
    instance = HostedInstance.objects.get(device=device)
    assert instance.state == "running"
    assert instance.restarts == 1
    assert "exited" in instance.last_error
    device.refresh_from_db()
    assert device.registered_at is not None  # no second registration: same identity
    wait_for(lambda: listening(ports[0]))


def test_crash_backoff_waits_before_the_next_start(
    acme_world: Acme, ports: range, driver: LocalProcessDriver, live_server: Any
) -> None:
    now = [100.0]
    slow = Reconciler(driver, live_server.url, backoff_first=5.0, clock=lambda: now[0])
    device = hosted_instance_create(principal=olivia(acme_world), application=acme_world.line_1)
    name = str(device.pk)
    slow.tick()
    pid = _running_pid(driver, name)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: driver.status(name).state == "exited")
    slow.tick()
    assert driver.status(name).state == "stopped"
    assert HostedInstance.objects.get(device=device).state == "crashed"
    now[0] += 5.0
    slow.tick()
    assert _running_pid(driver, name) != pid


def test_deleting_the_device_stops_the_process_and_removes_its_data(
    acme_world: Acme, ports: range, driver: LocalProcessDriver, reconciler: Reconciler
) -> None:
    device = hosted_instance_create(principal=olivia(acme_world), application=acme_world.line_1)
    name = str(device.pk)
    reconciler.tick()
    pid = _running_pid(driver, name)
    hosted_instance_delete(
        principal=olivia(acme_world), instance=HostedInstance.objects.get(device=device)
    )
    assert not Device.objects.filter(pk=device.pk).exists()
    reconciler.tick()
    assert not alive(pid)
    assert not driver.directory(name).exists()
    assert driver.instances() == []


def test_a_decommissioned_or_stopped_instance_is_not_running(
    acme_world: Acme, ports: range, driver: LocalProcessDriver, reconciler: Reconciler
) -> None:
    principal = olivia(acme_world)
    device = hosted_instance_create(principal=principal, application=acme_world.line_1)
    name = str(device.pk)
    reconciler.tick()
    pid = _running_pid(driver, name)
    hosted_instance_stop(principal=principal, instance=HostedInstance.objects.get(device=device))
    reconciler.tick()
    assert not alive(pid)
    assert HostedInstance.objects.get(device=device).state == "stopped"

    hosted_instance_restart(principal=principal, instance=HostedInstance.objects.get(device=device))
    reconciler.tick()
    pid = _running_pid(driver, name)
    device_decommission(principal=principal, device=Device.objects.get(pk=device.pk))
    reconciler.tick()
    assert not alive(pid)
    assert driver.status(name).state == "stopped"


def test_restart_request_gives_a_new_process(
    acme_world: Acme, ports: range, driver: LocalProcessDriver, reconciler: Reconciler
) -> None:
    device = hosted_instance_create(principal=olivia(acme_world), application=acme_world.line_1)
    reconciler.tick()
    pid = _running_pid(driver, str(device.pk))
    hosted_instance_restart(
        principal=olivia(acme_world), instance=HostedInstance.objects.get(device=device)
    )
    reconciler.tick()
    assert not alive(pid)
    assert _running_pid(driver, str(device.pk)) != pid
    assert HostedInstance.objects.get(device=device).restart_requested is False


def test_a_new_reconciler_adopts_running_runners_and_shutdown_stops_them(
    acme_world: Acme, ports: range, driver: LocalProcessDriver, live_server: Any, tmp_path: Path
) -> None:
    device = hosted_instance_create(principal=olivia(acme_world), application=acme_world.line_1)
    name = str(device.pk)
    Reconciler(driver, live_server.url).tick()
    pid = _running_pid(driver, name)

    # The reconciler process died: a fresh driver on the same directory knows nothing in memory.
    successor = LocalProcessDriver(tmp_path / "hosted", FAKE, grace_seconds=3)
    after_restart = Reconciler(successor, live_server.url)
    after_restart.tick()
    assert _running_pid(successor, name) == pid  # adopted, not started twice
    assert HostedInstance.objects.get(device=device).restarts == 0

    after_restart.shutdown()
    assert not alive(pid)
    assert successor.instances() == []


# --- the real runner --------------------------------------------------------------------------


def test_the_real_edge_runner_registers_runs_on_loopback_and_stops(
    acme_world: Acme, ports: range, tmp_path: Path, live_server: Any
) -> None:
    real = LocalProcessDriver(tmp_path / "hosted", cwd=Path(__file__).parents[3], grace_seconds=10)
    try:
        reconciler = Reconciler(real, live_server.url)
        device = hosted_instance_create(principal=olivia(acme_world), application=acme_world.line_1)
        name = str(device.pk)
        reconciler.tick()
        pid = _running_pid(real, name)
        device.refresh_from_db()
        assert device.registered_at is not None  # `edge-runner register` over real HTTP
        identity = real.data_dir(name) / "device" / "identity.json"
        assert stat.S_IMODE(identity.stat().st_mode) == 0o600
        wait_for(lambda: listening(ports[1]), timeout=30)  # the status page
        wait_for(lambda: listening(ports[0]), timeout=30)  # the engine
        with urllib.request.urlopen(  # loopback http
            f"http://127.0.0.1:{ports[1]}/status.json", timeout=5
        ) as answer:
            assert answer.status == 200
        bound = _listening_addresses(pid)
        assert bound, "the runner listens on nothing"
        assert all(address.startswith("127.0.0.1:") for address in bound), bound

        hosted_instance_delete(
            principal=olivia(acme_world), instance=HostedInstance.objects.get(device=device)
        )
        reconciler.tick()
        assert not alive(pid)
        assert not listening(ports[0])
        assert not listening(ports[1])
    finally:
        real.stop_many(real.instances())


def _listening_addresses(pid: int) -> set[str]:
    """host:port of every listening TCP socket of ``pid``'s session (the agent and its engine)."""
    session = os.getsid(pid)
    inodes: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != session:
                continue
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                host_hex, port_hex = fields[1].split(":")
                if len(host_hex) == 8:
                    host = socket.inet_ntoa(bytes.fromhex(host_hex)[::-1])
                else:
                    host = "ipv6:" + host_hex
                found.add(f"{host}:{int(port_hex, 16)}")
    return found
