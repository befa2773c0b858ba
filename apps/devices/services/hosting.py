"""Hosted instances: runners the platform starts itself (``apps.devices.hosting``).

An application has at most one development instance: a ``Device`` with ``hosted_driver`` set
and its ``HostedInstance`` row (desired state, loopback ports). The services write what should
be; the reconciler (``manage.py hosted_runners``) makes the processes follow and reports what
is through ``hosted_instance_observe``. The runner joins like any device: with a registration
code issued here, then through the same link.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.principal import Principal
from apps.audit.services import audit_record
from apps.core.errors import Conflict, ValidationError
from apps.devices.hosting import (
    MAX_LOG_LINES,
    HostingDriver,
    LocalProcessDriver,
    allocate_ports,
    parse_port_range,
)
from apps.devices.models import Device, DeviceStatus, HostedDesired, HostedInstance
from apps.devices.services.devices import announce, clean_name, device_delete, device_record
from apps.devices.services.provisioning import set_registration_code
from apps.teams.models import Application

LOCAL_DRIVER: Final = "local"
# A hosted runner registers within seconds of getting its code; it need not live 24 h.
HOSTED_CODE_LIFETIME: Final = timedelta(minutes=10)
_ALLOCATION_ATTEMPTS: Final = 5


def hosted_ports() -> range:
    return parse_port_range(getattr(settings, "HOSTED_PORTS", "18800-18899"))


def _record(instance: HostedInstance) -> dict[str, Any]:
    return {
        "device": instance.device_id,
        "desired": instance.desired,
        "port": instance.port,
        "status_port": instance.status_port,
    }


def _audit(event: str, principal: Principal, instance: HostedInstance, **changes: Any) -> None:
    audit_record(
        event=event,
        principal=principal,
        team=instance.team,
        application=instance.application,
        target=instance.device,
        **changes,
    )


def _lock(instance: HostedInstance) -> HostedInstance:
    return (
        HostedInstance.objects.select_for_update(of=("self",))
        .select_related("team", "application", "device")
        .get(pk=instance.pk)
    )


def _create_row(application: Application, name: str) -> HostedInstance:
    taken: set[int] = set()
    for port, status_port in HostedInstance.objects.values_list("port", "status_port"):
        taken |= {port, status_port}
    port, status_port = allocate_ports(taken, hosted_ports())
    device = Device.objects.create(
        team=application.team,
        name=name,
        application=application,
        hosted_driver=LOCAL_DRIVER,
        status=DeviceStatus.PENDING,
    )
    return HostedInstance.objects.create(
        team=application.team,
        device=device,
        application=application,
        port=port,
        status_port=status_port,
    )


def hosted_instance_create(
    *, principal: Principal, application: Application, name: str | None = None
) -> Device:
    """The application's development instance (desired running; the reconciler starts it).

    A second one for the same application is a 409 ``instance_exists``; no free port pair in
    MANIFOLD_HOSTED_PORTS a 409 ``ports_exhausted``. Audited ``device.hosted_instance.created``.
    """
    principal.require_writable("create hosted instances")
    clean = clean_name(name if name is not None else f"{application.name} (development)"[:100])
    for attempt in range(_ALLOCATION_ATTEMPTS):
        try:
            with transaction.atomic():
                Application.objects.select_for_update().filter(pk=application.pk).first()
                existing = HostedInstance.objects.filter(application=application).first()
                if existing is not None:
                    raise Conflict(
                        f"The application {application.name!r} already has a development "
                        f"instance (device {existing.device_id}).",
                        code="instance_exists",
                    )
                instance = _create_row(application, clean)
                device = instance.device
                _audit(
                    "device.hosted_instance.created",
                    principal,
                    instance,
                    after=device_record(device) | _record(instance),
                )
                announce(device)
                return device
        except IntegrityError:
            # Another application took the same ports at the same moment: pick again.
            if attempt == _ALLOCATION_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _set_desired(
    principal: Principal, instance: HostedInstance, desired: str, *, restart: bool = False
) -> HostedInstance:
    verb = "started" if desired == HostedDesired.RUNNING else "stopped"
    verb = "restarted" if restart else verb
    principal.require_writable(f"change whether hosted instances run ({verb})")
    with transaction.atomic():
        instance = _lock(instance)
        if instance.device.decommissioned_at is not None:
            raise Conflict(f"Device {instance.device.name!r} is decommissioned.")
        before = instance.desired
        if before == desired and not restart:
            return instance
        instance.desired = desired
        instance.restart_requested = restart
        instance.save(update_fields=["desired", "restart_requested", "updated_at"])
        _audit(
            f"device.hosted_instance.{verb}",
            principal,
            instance,
            before={"desired": before},
            after={"desired": desired},
        )
    return instance


def hosted_instance_start(*, principal: Principal, instance: HostedInstance) -> HostedInstance:
    return _set_desired(principal, instance, HostedDesired.RUNNING)


def hosted_instance_stop(*, principal: Principal, instance: HostedInstance) -> HostedInstance:
    return _set_desired(principal, instance, HostedDesired.STOPPED)


def hosted_instance_restart(*, principal: Principal, instance: HostedInstance) -> HostedInstance:
    """Stop and start again (also starts a stopped one)."""
    return _set_desired(principal, instance, HostedDesired.RUNNING, restart=True)


def hosted_instance_delete(*, principal: Principal, instance: HostedInstance) -> None:
    """Delete the instance and its device (decommissioned first, so a live link is told to
    wipe); the reconciler stops the process and removes its data."""
    principal.require_writable("delete hosted instances")
    with transaction.atomic():
        instance = _lock(instance)
        _audit("device.hosted_instance.deleted", principal, instance, before=_record(instance))
        device_delete(principal=principal, device=instance.device)


# --- for the reconciler -----------------------------------------------------------------------


def hosted_instances_for_reconciler(driver: str = LOCAL_DRIVER) -> list[HostedInstance]:
    """Every hosted instance of ``driver`` whose device still exists (all teams: the reconciler
    is the platform itself)."""
    return list(
        HostedInstance.objects.select_related("device", "application")
        .filter(device__hosted_driver=driver)
        .order_by("device_id")
    )


def hosted_should_run(instance: HostedInstance) -> bool:
    return instance.desired == HostedDesired.RUNNING and instance.device.decommissioned_at is None


def hosted_registration_code(device_id: int) -> str:
    """A fresh one-use registration code for the hosted device (the driver registers its new
    data directory with it). Replaces any code issued before; audited."""
    with transaction.atomic():
        device = (
            Device.objects.select_for_update(of=("self",))
            .select_related("team", "application")
            .get(pk=device_id)
        )
        if device.decommissioned_at is not None or not device.hosted_driver:
            raise Conflict(f"Device {device_id} is not a live hosted instance.")
        raw = set_registration_code(device, HOSTED_CODE_LIFETIME)
        audit_record(
            event="device.registration_code.created",
            principal=Principal.system("hosted runners"),
            team=device.team,
            application=device.application,
            target=device,
            after={"hosted": True, "code_expires_at": device.registration_code_expires_at},
        )
    return raw


def hosted_instance_observe(
    instance_id: int,
    *,
    state: str,
    restarts: int | None = None,
    last_error: str | None = None,
    restart_done: bool = False,
) -> None:
    """What the reconciler saw (written only when it changed; not audited: observations)."""
    changes: dict[str, Any] = {"state": state}
    if restarts is not None:
        changes["restarts"] = restarts
    if last_error is not None:
        changes["last_error"] = last_error[:400]
    if restart_done:
        changes["restart_requested"] = False
    row = HostedInstance.objects.filter(pk=instance_id).values(*changes).first()
    if row is None or row == changes:
        return
    HostedInstance.objects.filter(pk=instance_id).update(
        **changes, state_changed_at=timezone.now(), updated_at=timezone.now()
    )


def hosted_instance_of(application: Application) -> HostedInstance | None:
    """The application's development instance (the caller resolved the application through
    ``access_application``)."""
    return (
        HostedInstance.objects.select_related("device", "application", "team")
        .filter(application=application)
        .first()
    )


def hosting_driver(name: str) -> HostingDriver:
    """The driver that runs ``name``'s instances, as the platform reads them (its logs)."""
    if name != LOCAL_DRIVER:
        raise Conflict(f"No hosting driver named {name!r} on this platform.")
    return LocalProcessDriver(Path(settings.HOSTED_ROOT))


def hosted_instance_logs(instance: HostedInstance, lines: int = 100) -> list[str]:
    """The newest ``lines`` (1 to MAX_LOG_LINES) lines of the instance's runner output, oldest
    first; empty before its first start. Read-only: not audited."""
    if not 1 <= lines <= MAX_LOG_LINES:
        raise ValidationError(
            f"lines must be 1 to {MAX_LOG_LINES}.", fields={"lines": f"1 to {MAX_LOG_LINES}."}
        )
    driver = hosting_driver(instance.device.hosted_driver)
    return driver.logs(str(instance.device_id), lines)
