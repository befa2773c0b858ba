"""Devices (edge runners) of a team, how they join, what they should run and what they ran.

- ``Device``: identity (credential stored hashed), membership (application, groups), tags and
  env vars, and the live state its heartbeats report (``status``, ``last_seen``, ``active_*``).
- ``DeviceGroup``: devices sharing env vars (a device's own value wins).
- ``ProvisioningToken`` and the registration code on a pre-created ``Device``: how a runner
  registers (docs/device-protocol.md). Stored hashed.
- ``DeviceTarget``: one issued target (a snapshot with a signed manifest, one generation) and
  its outcome on the device.
- ``DeviceStateChange``: the append-only history that answers "which snapshot was active on
  device D at time T" (the row with the greatest ``at`` <= T).
- ``DeviceHeartbeat``: the resource time series (downsampled by retention).
- ``DeviceAlert``: an offline alert, open until the device returns.
- ``DeveloperCredentials``: the credentials sent in developer mode, sealed with the team's data
  key until the member leaves it (kept into the snapshot, or dropped).
"""

from __future__ import annotations

from django.db import models

from apps.core.models import TeamOwned, TimeStamped


class DeviceStatus(models.TextChoices):
    PENDING = "pending", "Waiting for registration"
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"
    UPDATING = "updating", "Updating"
    ERROR = "error", "Error"
    SUSPENDED = "suspended", "Suspended"
    DECOMMISSIONED = "decommissioned", "Decommissioned"


class DeviceGroup(TeamOwned):
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=2000)
    env = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("name", "id")
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="device_group_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Device(TeamOwned):
    name = models.CharField(max_length=100)
    application = models.ForeignKey(
        "teams.Application",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="devices",
    )
    groups = models.ManyToManyField(DeviceGroup, blank=True, related_name="devices")
    tags = models.JSONField(default=list, blank=True)  # ["line-3", "PRD"]
    env = models.JSONField(default=dict, blank=True)

    # identity
    credential_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    sealing_public_key = models.BinaryField(default=bytes)  # X25519, credentials sealed to it
    registration_code_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    registration_code_expires_at = models.DateTimeField(null=True, blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    registered_with = models.ForeignKey(
        "devices.ProvisioningToken",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="devices",
    )
    agent_version = models.CharField(max_length=40, blank=True)
    hostname = models.CharField(max_length=200, blank=True)

    # administrative state
    suspended = models.BooleanField(default=False)
    decommissioned_at = models.DateTimeField(null=True, blank=True)
    developer_mode = models.BooleanField(default=False)
    # hosted instances: which driver runs it (empty: a physical device)
    hosted_driver = models.CharField(max_length=40, blank=True)

    # live state (written by the link; status is derived and cached here for lists/filters)
    status = models.CharField(
        max_length=20, choices=DeviceStatus.choices, default=DeviceStatus.PENDING
    )
    last_seen = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=20, blank=True)  # the heartbeat's state
    active_target = models.ForeignKey(
        "devices.DeviceTarget", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target = models.ForeignKey(
        "devices.DeviceTarget", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resources = models.JSONField(default=dict, blank=True)  # the last heartbeat's figures
    nodes = models.JSONField(default=dict, blank=True)  # {"total", "error"}
    last_errors = models.JSONField(default=list, blank=True)
    # The channel of the socket that is the device's live link (its consumer), empty without
    # one: commands go there, a newer link replaces it (docs/device-protocol.md).
    link_channel = models.CharField(max_length=200, blank=True, editable=False)

    class Meta:
        ordering = ("name", "id")
        indexes = [
            models.Index(fields=["team", "status"]),
            models.Index(fields=["team", "application"]),
        ]

    def __str__(self) -> str:
        return self.name


class ProvisioningToken(TeamOwned):
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)  # shown in lists: "mft_Ab3d"
    application = models.ForeignKey(
        "teams.Application", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    group = models.ForeignKey(
        DeviceGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tags = models.JSONField(default=list, blank=True)
    # Devices registering with this token get this snapshot (of ``application``) as target.
    snapshot = models.ForeignKey(
        "snapshots.Snapshot", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    max_uses = models.PositiveIntegerField(null=True, blank=True)  # None: unlimited
    uses = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return self.name


class TargetOutcome(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    REFUSED = "refused", "Refused"
    SUPERSEDED = "superseded", "Superseded"


class DeviceTarget(TeamOwned):
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="targets")
    snapshot = models.ForeignKey(
        "snapshots.Snapshot", on_delete=models.PROTECT, related_name="device_targets"
    )
    generation = models.PositiveBigIntegerField()
    envelope = models.JSONField()  # the signed manifest, as sent
    digest = models.CharField(max_length=64)  # Manifest.digest: what heartbeats report
    credentials_sealed = models.BinaryField(default=bytes)  # sealed to the device's key
    # settings.json as signed: the env in it is the device's and its groups' at issue time
    # (empty for targets issued before 0006: theirs is the snapshot's own).
    settings_part = models.BinaryField(default=bytes)
    issued_by = models.CharField(max_length=200, blank=True)  # the principal's label
    outcome = models.CharField(
        max_length=20, choices=TargetOutcome.choices, default=TargetOutcome.PENDING
    )
    reason = models.TextField(blank=True, max_length=4000)
    reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-generation",)
        constraints = [
            models.UniqueConstraint(fields=["team", "generation"], name="target_generation_unique")
        ]

    def __str__(self) -> str:
        return f"{self.device_id}@{self.generation}"


class DeviceStateChange(models.Model):
    """Append-only: one row per change of the active target or of the device's status."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="history")
    at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=20, choices=DeviceStatus.choices)
    active_target = models.ForeignKey(
        DeviceTarget, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    snapshot = models.ForeignKey(
        "snapshots.Snapshot", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=400, blank=True)

    class Meta:
        ordering = ("-at", "-id")
        indexes = [models.Index(fields=["device", "-at"])]

    def __str__(self) -> str:
        return f"{self.device_id} {self.status} @ {self.at}"


class DeviceHeartbeat(models.Model):
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="heartbeats")
    at = models.DateTimeField()
    cpu_percent = models.FloatField(null=True)
    memory_bytes = models.BigIntegerField(null=True)
    memory_limit_bytes = models.BigIntegerField(null=True)
    disk_free_bytes = models.BigIntegerField(null=True)
    uptime_seconds = models.FloatField(null=True)
    engine_restarts = models.IntegerField(null=True)

    class Meta:
        ordering = ("-at",)
        indexes = [models.Index(fields=["device", "-at"])]

    def __str__(self) -> str:
        return f"{self.device_id} @ {self.at}"


class DeviceAlert(TimeStamped):
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=20, default="offline")
    raised_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    message = models.CharField(max_length=400)

    class Meta:
        ordering = ("-raised_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["device", "kind"],
                condition=models.Q(cleared_at__isnull=True),
                name="one_open_alert_per_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.device_id}"


class FleetSettings(models.Model):
    """Per-team fleet options: the offline alert threshold and an optional webhook."""

    team = models.OneToOneField("teams.Team", on_delete=models.CASCADE, primary_key=True)
    offline_after_seconds = models.PositiveIntegerField(default=120)
    alert_webhook_url = models.URLField(blank=True)

    def __str__(self) -> str:
        return f"fleet settings of {self.team_id}"


class HostedDesired(models.TextChoices):
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"


class HostedInstance(TeamOwned):
    """A runner the platform starts itself (``Device.hosted_driver``): an application's
    development instance. What it should be (``desired``) is written by the services; what it
    is (``state``, ``restarts``, ``last_error``) by the reconciler (``hosted_runners``)."""

    device = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="hosted")
    # One development instance per application (deleting the application removes the row; the
    # reconciler then stops the process).
    application = models.OneToOneField(
        "teams.Application", on_delete=models.CASCADE, related_name="development_instance"
    )
    desired = models.CharField(
        max_length=20, choices=HostedDesired.choices, default=HostedDesired.RUNNING
    )
    # Loopback ports from MANIFOLD_HOSTED_PORTS, fixed for the instance's life.
    port = models.PositiveIntegerField(unique=True)
    status_port = models.PositiveIntegerField(unique=True)
    restart_requested = models.BooleanField(default=False)  # the reconciler clears it
    state = models.CharField(max_length=20, default="stopped")
    restarts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=400, blank=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"hosted {self.device_id} on {self.port}"


class DeveloperCredentials(TeamOwned):
    """The credentials a member sent to a device in developer mode since entering it: ``{node
    id: {field: value}}`` (``""`` removes a field), sealed with the team's data key like a
    snapshot's (``apps.snapshots.keys``, its own purpose). Leaving with "keep" lays them over
    the parent snapshot's; any leave deletes the row."""

    device = models.OneToOneField(
        Device, on_delete=models.CASCADE, related_name="developer_credentials"
    )
    credentials_sealed = models.BinaryField(default=bytes, editable=False)
    # Protected: a retired team key stays while a row still needs it to open.
    credentials_key = models.ForeignKey(
        "snapshots.TeamKey", on_delete=models.PROTECT, related_name="+"
    )

    def __str__(self) -> str:
        return f"developer credentials of {self.device_id}"
