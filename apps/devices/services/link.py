"""What the device link does to the database: one function per link event.

``apps.devices.consumers.DeviceLinkConsumer`` runs on the event loop and calls these on threads
of its own (``consumers._db``); every one is a few queries (a heartbeat: one read with its targets
joined, one update, and at most one time-series row per ``HEARTBEAT_ROW_SECONDS``). The link
keeps nothing that matters in memory: every heartbeat re-reads the device row, so a revoked
credential, a decommission or a new target is seen within one heartbeat even when the channel
layer lost the message that should have said so (docs/device-protocol.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import time
from dataclasses import dataclass, field
from typing import Any, Final

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.accounts.principal import DEVICE, Principal
from apps.audit.services import AuditTarget, audit_record
from apps.core.audit_context import AuditContext
from apps.core.ids import parse_id
from apps.core.prepared import PreparedQuery, insert_row, save_fields
from apps.core.realtime import send_group_on_commit
from apps.devices.auth import credential_digest, hash_secret, retired_credential_marker
from apps.devices.bus import WATCH_EVENT, device_watch_group_name
from apps.devices.models import (
    Device,
    DeviceAlert,
    DeviceHeartbeat,
    DeviceStateChange,
    DeviceStatus,
    DeviceTarget,
    TargetOutcome,
)
from apps.devices.services.devices import announce, state_payload
from apps.snapshots.services import signed_key_list
from edge_runner.protocol import link

# At most one resource row per device this often (the heartbeat itself may be faster).
HEARTBEAT_ROW_SECONDS: Final = 10.0
# A refused handshake or a closed link is audited once per device (or address) per minute.
AUDIT_EVERY_SECONDS: Final = 60
_STATE_STATUS: Final = {
    "running": DeviceStatus.ONLINE,
    "updating": DeviceStatus.UPDATING,
    "safe": DeviceStatus.ERROR,
    "stopped": DeviceStatus.ERROR,
    "error": DeviceStatus.ERROR,
    "suspended": DeviceStatus.ONLINE,
}
_OUTCOMES: Final = {
    "applied": TargetOutcome.APPLIED,
    "failed": TargetOutcome.FAILED,
    "rolled_back": TargetOutcome.ROLLED_BACK,
    "refused": TargetOutcome.REFUSED,
}


def heartbeat_seconds() -> float:
    """How often devices beat (``DEVICE_HEARTBEAT_SECONDS``; tests make it short)."""
    return float(getattr(settings, "DEVICE_HEARTBEAT_SECONDS", link.DEFAULT_HEARTBEAT_SECONDS))


def device_principal(device: Device) -> Principal:
    return Principal.for_subject(DEVICE, device, f"device {device.name}")


# The device row read at the handshake answers the ``hello`` that follows within this long
# (one read per connection instead of two; a target issued meanwhile is caught by the re-read
# after the link claims the device, ``link_hello_record``).
HELLO_REUSE_SECONDS: Final = 5.0


@dataclass
class LinkSession:
    """What a live link remembers of its device between heartbeats."""

    device_id: int
    team_id: int
    name: str
    credential_hash: str
    suspended: bool
    last_row_at: float = 0.0
    channel: str = ""  # the link consumer's channel, the device's ``link_channel`` once claimed
    loaded: Device | None = None  # the row read at the handshake, for the hello
    loaded_at: float = 0.0  # time.monotonic() of that read


@dataclass
class LinkReply:
    """What the consumer must do after an event: frames to send, then maybe close."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None


def link_authenticate(raw: str) -> LinkSession | None:
    """The session of a valid credential (suspended devices connect too), or None. The device
    row is read as ``hello`` needs it (``_LOAD``'s joins), and kept for it."""
    digest = credential_digest(raw) if raw else None
    device = _LOAD_BY_CREDENTIAL.first(digest) if digest is not None else None
    # The index lookup found the row; the comparison that decides is constant-time.
    if digest is None or device is None:
        return None
    if not hmac.compare_digest(device.credential_hash or "", digest):
        return None
    return LinkSession(
        device_id=device.pk,
        team_id=device.team_id,
        name=device.name,
        credential_hash=digest,
        suspended=device.suspended,
        loaded=device,
        loaded_at=time.monotonic(),
    )


def _audit_once(key: str) -> bool:
    return bool(cache.add(f"devices:link-audit:{key}", 1, AUDIT_EVERY_SECONDS))


def link_refused(raw: str, *, ip: str | None, reason: str) -> None:
    """Audit a refused handshake: on the device's team chain when the credential names a
    (decommissioned) device, else on the platform chain; once a minute per device or address."""
    digest = hash_secret(raw)
    device = (
        Device.objects.select_related("team")
        .filter(credential_hash__in=[digest, retired_credential_marker(digest)])
        .first()
        if raw
        else None
    )
    if not _audit_once(f"refused:{device.pk if device else ip}"):
        return
    context = AuditContext(ip=ip)
    with transaction.atomic():
        audit_record(
            event="device.link.refused",
            principal=Principal.system("device-link"),
            team=device.team if device else None,
            target=device,
            after={"reason": reason},
            context=context,
        )


def link_closed(session: LinkSession, *, code: int, reason: str, ip: str | None) -> None:
    """Audit a link the platform closed (too big, flood, malformed...), once a minute."""
    if not _audit_once(f"closed:{session.device_id}"):
        return
    device = Device.objects.select_related("team").filter(pk=session.device_id).first()
    with transaction.atomic():
        audit_record(
            event="device.link.closed",
            principal=Principal.system("device-link"),
            team=device.team if device else None,
            target=device or AuditTarget("devices.device", str(session.device_id)),
            after={"code": code, "reason": reason[:300]},
            context=AuditContext(ip=ip),
        )


def target_frame(target: DeviceTarget | None) -> dict[str, Any] | None:
    """The ``target`` object of ``welcome`` and ``target`` frames."""
    if target is None:
        return None
    return {
        "generation": target.generation,
        "snapshot": str(target.snapshot_id),
        "manifest": target.envelope,
    }


def announce_state(device: Device) -> None:
    """Tell the team's pages (``device.state.changed``) and the device's live watchers."""
    announce(device)
    send_group_on_commit(
        device_watch_group_name(device.pk),
        {"type": WATCH_EVENT, "kind": "state", "device": state_payload(device)},
    )


def _record_change(device: Device, reason: str) -> None:
    active = device.active_target
    insert_row(
        DeviceStateChange(
            device=device,
            at=timezone.now(),
            status=device.status,
            active_target=active,
            snapshot_id=active.snapshot_id if active else None,
            reason=reason[:400],
        )
    )


# Read at every hello and heartbeat: the snapshots' names and ids are needed, their flows,
# sealed credentials and settings (up to megabytes) are not.
_SNAPSHOT_BULK = ("flows", "credentials_sealed", "env", "runner_settings", "model_refs")
_DEFERRED = tuple(
    f"{target}__snapshot__{name}"
    for target in ("target", "active_target")
    for name in _SNAPSHOT_BULK
)


# Compiled once per process: the compilation cost 15 times the query (apps/core/prepared).
_LOAD: PreparedQuery[Device] = PreparedQuery(
    lambda device_id: (
        Device.objects.select_related(
            "team", "application", "target__snapshot", "active_target__snapshot"
        )
        .defer(*_DEFERRED)
        .filter(pk=device_id)
    ),
    sentinel=-7_000_000_001,
)


_LOAD_BY_CREDENTIAL: PreparedQuery[Device] = PreparedQuery(
    lambda digest: (
        Device.objects.select_related(
            "team", "application", "target__snapshot", "active_target__snapshot"
        )
        .defer(*_DEFERRED)
        .filter(credential_hash=digest, decommissioned_at__isnull=True)
    ),
    sentinel="prepared:link-credential",
)


def _load(device_id: int) -> Device | None:
    return _LOAD.first(int(device_id))


def _live_device(session: LinkSession, *, claimed: bool = True) -> Device | LinkReply:
    """The device row, re-read at every event; a closing reply when it may no longer hold a
    link (decommissioned, its credential changed, or, once this link ``claimed`` the device at
    ``hello``, another socket of the device took over since: a lost "replaced" heals here)."""
    device = _load(session.device_id)
    if device is None or device.decommissioned_at is not None:
        return LinkReply(close_code=link.CLOSE_DECOMMISSIONED)
    if device.credential_hash != session.credential_hash:
        return LinkReply(close_code=link.CLOSE_UNAUTHORIZED)
    if claimed and device.link_channel != session.channel:
        return LinkReply(close_code=link.CLOSE_REPLACED)
    session.suspended = device.suspended
    return device


def _deliverable(device: Device) -> DeviceTarget | None:
    return None if device.suspended else device.target


def audit_device(event: str, principal: Principal, device: Device, after: Any) -> None:
    """An audit row about one device, in its team's chain, under its application."""
    audit_record(
        event=event,
        principal=principal,
        team=device.team,
        application=device.application,
        target=device,
        after=after,
    )


def alert_clear(alert: DeviceAlert, principal: Principal) -> None:
    alert.cleared_at = timezone.now()
    alert.save(update_fields=["cleared_at", "updated_at"])
    audit_device("device.alert.cleared", principal, alert.device, {"kind": alert.kind})


_OPEN_ALERTS: PreparedQuery[DeviceAlert] = PreparedQuery(
    lambda device_id: DeviceAlert.objects.filter(device_id=device_id, cleared_at__isnull=True),
    sentinel=-7_000_000_002,
)


def _clear_alerts(device: Device, principal: Principal) -> None:
    for alert in _OPEN_ALERTS.all(device.pk):
        alert.device = device
        alert_clear(alert, principal)


def _set_live_state(
    device: Device, *, state: str, status: str, reason: str, extra: dict[str, Any]
) -> list[str]:
    """Write the live fields; a history row, an event and cleared alerts on a status change."""
    previous = device.status
    device.state, device.status, device.last_seen = state, status, timezone.now()
    fields = ["state", "status", "last_seen", "updated_at"]
    for name, value in extra.items():
        setattr(device, name, value)
        fields.append(name)
    save_fields(device, fields)
    if status != previous:
        _record_change(device, reason)
        if previous in (DeviceStatus.OFFLINE, DeviceStatus.PENDING):
            _clear_alerts(device, device_principal(device))
        announce_state(device)
    return fields


def link_hello(session: LinkSession, message: dict[str, Any]) -> tuple[LinkReply, Device | None]:
    """``welcome`` for ``hello`` (the current target, unless suspended), and the device row to
    hand to ``link_hello_record`` once the welcome is sent.

    Reads only: a fleet reconnecting at once (RELIABILITY family 25) gets its targets after one
    read each, and the state writes queue behind the reads instead of in front of them."""
    loaded, session.loaded = session.loaded, None
    if loaded is not None and time.monotonic() - session.loaded_at < HELLO_REUSE_SECONDS:
        device: Device | LinkReply = loaded
    else:
        device = _live_device(session, claimed=False)
    if isinstance(device, LinkReply):
        return device, None
    welcome = {
        "type": link.WELCOME,
        "protocol": link.PROTOCOL_VERSION,
        "device": {"id": device.pk, "name": device.name, "status": _hello_status(device, message)},
        "heartbeat_seconds": heartbeat_seconds(),
        # Signed by the key of what the device runs: after a rotation it trusts only that one.
        "keys": signed_key_list(device.team, signer_key_id=_signer_of(device)),
        "target": target_frame(_deliverable(device)),
    }
    return LinkReply(frames=[welcome]), device


def _hello_status(device: Device, message: dict[str, Any]) -> str:
    state = str(message.get("state") or "running")
    return DeviceStatus.SUSPENDED if device.suspended else _STATE_STATUS.get(state, "online")


# Who holds the device's link, and its target, as ``hello`` claims it (locked: a target being
# issued commits first, and one issued later finds the new channel).
_HOLDER: PreparedQuery[Device] = PreparedQuery(
    lambda device_id: (
        Device.objects.select_for_update()
        .only("id", "target_id", "link_channel", "credential_hash", "decommissioned_at")
        .filter(pk=device_id)
    ),
    sentinel=-7_000_000_003,
)


@dataclass(frozen=True)
class HelloRecord:
    replaced: str | None  # the channel of the link this one replaces (told to close, 4409)
    stale: bool  # the welcome's target changed meanwhile: send the current one
    reply: LinkReply | None = None  # decommissioned or revoked meanwhile: close


def link_hello_record(device: Device, message: dict[str, Any], channel: str) -> HelloRecord:
    """Write what ``hello`` says: online (history row, cleared alerts, event on a change), and
    that the link on ``channel`` holds the device now (a lost "replaced" heals at the older
    link's next heartbeat, which finds another channel in the row).

    The row is read again, locked, before the write: it names the link being replaced, and a
    target issued since the welcome's read (pushed to the previous channel, or to none) is
    caught here (``stale``); one issued after the commit reaches this link. So is a
    decommission or a revocation (``reply``: close, nothing written)."""
    state = str(message.get("state") or "running")
    with transaction.atomic():
        holder = _HOLDER.first(device.pk)
        if holder is None or holder.decommissioned_at is not None:
            return HelloRecord(None, False, LinkReply(close_code=link.CLOSE_DECOMMISSIONED))
        if holder.credential_hash != device.credential_hash:
            return HelloRecord(None, False, LinkReply(close_code=link.CLOSE_UNAUTHORIZED))
        previous = holder.link_channel
        stale = holder.target_id != device.target_id
        _set_live_state(
            device,
            state=state if state in link.STATES else "running",
            status=_hello_status(device, message),
            reason="link connected",
            extra={"agent_version": str(message["agent_version"])[:40], "link_channel": channel},
        )
    return HelloRecord(previous if previous and previous != channel else None, stale)


def _signer_of(device: Device) -> str | None:
    active = device.active_target
    key = active.envelope.get("key_id") if active is not None else None
    return key if isinstance(key, str) else None


def _reported_generation(report: Any) -> int | None:
    if isinstance(report, dict):
        generation = report.get("generation")
        if isinstance(generation, int) and not isinstance(generation, bool):
            return generation
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _resources(raw: Any) -> dict[str, float]:
    names = (
        "cpu_percent",
        "memory_bytes",
        "memory_limit_bytes",
        "disk_free_bytes",
        "uptime_seconds",
        "engine_restarts",
    )
    source = raw if isinstance(raw, dict) else {}
    return {name: value for name in names if (value := _number(source.get(name))) is not None}


def _nodes(raw: Any) -> dict[str, int]:
    source = raw if isinstance(raw, dict) else {}
    return {k: int(v) for k in ("total", "error") if (v := _number(source.get(k))) is not None}


def _errors(raw: Any) -> list[dict[str, str]]:
    rows = raw if isinstance(raw, list) else []
    return [
        {k: str(row.get(k, ""))[:500] for k in ("time", "node", "message")}
        for row in rows[:5]
        if isinstance(row, dict)
    ]


def _heartbeat_row(device: Device, resources: dict[str, float]) -> None:
    def whole(name: str) -> int | None:
        value = resources.get(name)
        return None if value is None else int(value)

    row = DeviceHeartbeat(
        device=device,
        at=device.last_seen or timezone.now(),
        cpu_percent=resources.get("cpu_percent"),
        memory_bytes=whole("memory_bytes"),
        memory_limit_bytes=whole("memory_limit_bytes"),
        disk_free_bytes=whole("disk_free_bytes"),
        uptime_seconds=resources.get("uptime_seconds"),
        engine_restarts=whole("engine_restarts"),
    )
    insert_row(row)


def _follow_active(device: Device, report: Any) -> bool:
    """Point ``active_target`` at what the device says it runs; True when it moved."""
    generation = _reported_generation(report)
    current = device.active_target.generation if device.active_target else None
    if generation == current:
        return False
    found = (
        DeviceTarget.objects.filter(device=device, generation=generation).first()
        if generation is not None
        else None
    )
    if found is None and generation is not None:
        return False  # a generation this device was never issued: keep what we know
    device.active_target = found  # saved by the caller
    return True


def link_heartbeat(session: LinkSession, message: dict[str, Any], now: float) -> LinkReply:
    """Record a heartbeat; answer a stale target report with the current target."""
    state = message["state"]
    if state not in link.STATES:
        raise link.LinkError(f"heartbeat: unknown state {state!r}")
    device = _live_device(session)
    if isinstance(device, LinkReply):
        return device
    resources = _resources(message.get("resources"))
    status = DeviceStatus.SUSPENDED if device.suspended else _STATE_STATUS[state]
    moved = _follow_active(device, message.get("active"))
    before = device.status
    # Most heartbeats change only the live figures: one UPDATE (and a time-series row now and
    # then), each committed on its own. A change of status or active target writes its history
    # row, alerts and event in one transaction with it.
    changing = moved or status != before
    with transaction.atomic() if changing else contextlib.nullcontext():
        _set_live_state(
            device,
            state=state,
            status=status,
            reason=f"heartbeat: {state}",
            extra={
                "resources": resources,
                "nodes": _nodes(message.get("nodes")),
                "last_errors": _errors(message.get("errors")),
                **({"active_target": device.active_target} if moved else {}),
            },
        )
        if moved and before == device.status:
            _record_change(device, "active snapshot changed")
            announce_state(device)
    if now - session.last_row_at >= HEARTBEAT_ROW_SECONDS:
        _heartbeat_row(device, resources)
        session.last_row_at = now
    reply = LinkReply()
    # A lost suspend/resume heals like a lost target: the heartbeat says what the device does.
    if device.suspended != (state == "suspended"):
        reply.frames.append({"type": link.SUSPEND if device.suspended else link.RESUME})
    deliverable = _deliverable(device)
    if deliverable is not None and (
        _reported_generation(message.get("target")) != deliverable.generation
    ):
        reply.frames.append({"type": link.TARGET, "target": target_frame(deliverable)})
    return reply


def link_apply_result(session: LinkSession, message: dict[str, Any]) -> LinkReply:
    """Record a target's outcome on the device, audit it, tell the team."""
    outcome = _OUTCOMES.get(message["outcome"])
    if outcome is None:
        raise link.LinkError(f"apply_result: unknown outcome {message['outcome']!r}")
    with transaction.atomic():
        device = _live_device(session)
        if isinstance(device, LinkReply):
            return device
        target = (
            DeviceTarget.objects.select_for_update()
            .filter(device=device, generation=message["generation"])
            .first()
        )
        if target is None or str(target.snapshot_id) != message["snapshot"]:
            return LinkReply(
                frames=[
                    {
                        "type": link.ERROR,
                        "code": "unknown_target",
                        "message": f"generation {message['generation']} was not issued to "
                        "this device with that snapshot",
                    }
                ]
            )
        target.outcome = outcome
        target.reason = str(message.get("reason") or "")[:4000]
        target.reported_at = timezone.now()
        target.save(update_fields=["outcome", "reason", "reported_at", "updated_at"])
        if outcome == TargetOutcome.APPLIED:
            moved = _follow_active(device, {"generation": target.generation})
        else:
            moved = _follow_active(device, message.get("active"))
        if moved:
            device.save(update_fields=["active_target", "updated_at"])
            _record_change(device, f"target {target.generation} {outcome}")
        audit_device(
            f"device.target.{outcome}",
            device_principal(device),
            device,
            {
                "generation": target.generation,
                "snapshot": target.snapshot_id,
                "reason": target.reason,
            },
        )
        announce_state(device)
    return LinkReply()


def link_current_target(session: LinkSession) -> LinkReply:
    """A ``target`` frame for the push path (``push_target``, ``resume``)."""
    device = _live_device(session)
    if isinstance(device, LinkReply):
        return device
    deliverable = _deliverable(device)
    if deliverable is None:
        return LinkReply()
    return LinkReply(frames=[{"type": link.TARGET, "target": target_frame(deliverable)}])


def link_disconnected(session: LinkSession) -> None:
    """The link went away: offline, unless another socket of the device holds it now (or this
    one never claimed it)."""
    if not session.channel:
        return
    with transaction.atomic():
        device = Device.objects.select_for_update().filter(pk=session.device_id).first()
        if device is None or device.link_channel != session.channel:
            return
        device.link_channel = ""
        fields = ["link_channel", "updated_at"]
        went_offline = device.status != DeviceStatus.OFFLINE and device.decommissioned_at is None
        if went_offline:
            device.status = DeviceStatus.OFFLINE
            fields.append("status")
        device.save(update_fields=fields)
        if went_offline:
            device = _load(device.pk) or device
            _record_change(device, "link closed")
            announce_state(device)


def device_state_at(device: Device, when: dt.datetime) -> DeviceStateChange | None:
    """The history row in force at ``when``: the latest change at or before it."""
    return (
        DeviceStateChange.objects.select_related("snapshot", "active_target")
        .filter(device=device, at__lte=when)
        .order_by("-at", "-id")
        .first()
    )


def device_application_in_team(team: Any, raw_id: Any) -> tuple[int, int | None] | None:
    """(device id, application id) of a device of ``team`` (the live socket's check), or None
    for a missing or foreign id (never told apart)."""
    pk = parse_id(raw_id)
    if pk is None:
        return None
    row = (
        Device.objects.filter(team=team, pk=pk, decommissioned_at__isnull=True)
        .values_list("pk", "application_id")
        .first()
    )
    return (int(row[0]), row[1]) if row else None


def device_history(device: Device, limit: int = 100) -> list[DeviceStateChange]:
    """The device's latest state changes, newest first."""
    return list(
        DeviceStateChange.objects.select_related("active_target")
        .filter(device=device)
        .order_by("-at", "-id")[:limit]
    )
