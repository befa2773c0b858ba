"""API shapes of the fleet.

Write serializers validate shapes only; ids and slugs in them are resolved by the views through
``access_*`` (another team's id is a 400 on that field, or a 404 for the devices of a bulk
action, with nothing changed), and the services apply the content rules (tags, env names).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.devices.models import Device, DeviceGroup, DeviceStatus, ProvisioningToken
from apps.teams.models import Application

BULK_ACTIONS = ("move", "tag", "untag", "suspend", "resume", "delete")
MAX_BULK = 500


class ApplicationRefSerializer(serializers.ModelSerializer[Application]):
    class Meta:
        model = Application
        fields = ("id", "slug", "name")
        read_only_fields = fields


class GroupRefSerializer(serializers.ModelSerializer[DeviceGroup]):
    class Meta:
        model = DeviceGroup
        fields = ("id", "name")
        read_only_fields = fields


class SnapshotRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


class DeviceSerializer(serializers.ModelSerializer[Device]):
    application = ApplicationRefSerializer(read_only=True, allow_null=True)
    groups = GroupRefSerializer(many=True, read_only=True)
    active_snapshot = SnapshotRefSerializer(
        source="active_target.snapshot", read_only=True, allow_null=True, default=None
    )
    target_snapshot = SnapshotRefSerializer(
        source="target.snapshot", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = Device
        fields = (
            "id",
            "name",
            "status",
            "last_seen",
            "active_snapshot",
            "target_snapshot",
            "tags",
            "application",
            "groups",
            "env",
            "agent_version",
            "hostname",
            "state",
            "suspended",
            "developer_mode",
            "registered_at",
            "decommissioned_at",
            "registration_code_expires_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


def _tags(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=50, trim_whitespace=False), max_length=20, **kwargs
    )


def _env(**kwargs: Any) -> serializers.DictField:
    return serializers.DictField(
        child=serializers.CharField(max_length=4096, allow_blank=True, trim_whitespace=False),
        **kwargs,
    )


class DeviceUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, required=False)
    tags = _tags(required=False)
    env = _env(required=False)
    application = serializers.CharField(
        max_length=50, required=False, allow_null=True, help_text="Application slug, or null."
    )
    groups = serializers.ListField(
        child=serializers.IntegerField(min_value=1), max_length=100, required=False
    )


class DeviceFilterSerializer(serializers.Serializer[Any]):
    application = serializers.CharField(max_length=50, required=False, help_text="Slug.")
    group = serializers.IntegerField(min_value=1, required=False, help_text="Device group id.")
    tag = serializers.CharField(max_length=50, required=False)
    status = serializers.ChoiceField(choices=DeviceStatus.choices, required=False)
    q = serializers.CharField(max_length=200, required=False, help_text="In name or hostname.")


class DeviceBulkSerializer(serializers.Serializer[Any]):
    action = serializers.ChoiceField(choices=BULK_ACTIONS)
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=MAX_BULK
    )
    application = serializers.CharField(
        max_length=50, required=False, allow_null=True, help_text="move: slug, or null."
    )
    tags = _tags(required=False, help_text="tag/untag: the tags to add or remove.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        action = attrs["action"]
        if action == "move" and "application" not in attrs:
            raise serializers.ValidationError({"application": "move needs an application."})
        if action in ("tag", "untag") and not attrs.get("tags"):
            raise serializers.ValidationError({"tags": f"{action} needs at least one tag."})
        return attrs


class DeviceBulkResultSerializer(serializers.Serializer[Any]):
    action = serializers.CharField(read_only=True)
    count = serializers.IntegerField(read_only=True)
    devices = DeviceSerializer(many=True, read_only=True)


class RegistrationCodeCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    application = serializers.CharField(max_length=50, required=False, allow_null=True)
    groups = serializers.ListField(
        child=serializers.IntegerField(min_value=1), max_length=100, required=False
    )


class RegistrationCodeCreatedSerializer(serializers.Serializer[Any]):
    device = DeviceSerializer(read_only=True)
    code = serializers.CharField(read_only=True, help_text="MFR-XXXX-XXXX-XXXX, shown once.")


class ProvisioningTokenSerializer(serializers.ModelSerializer[ProvisioningToken]):
    application = ApplicationRefSerializer(read_only=True, allow_null=True)
    group = GroupRefSerializer(read_only=True, allow_null=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)

    class Meta:
        model = ProvisioningToken
        fields: tuple[str, ...] = (
            "id",
            "name",
            "prefix",
            "application",
            "group",
            "tags",
            "expires_at",
            "max_uses",
            "snapshot",
            "uses",
            "revoked_at",
            "created_by",
            "last_used_at",
            "created_at",
        )
        read_only_fields = fields


class ProvisioningTokenCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    application = serializers.CharField(max_length=50, required=False, allow_null=True)
    group = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    tags = _tags(required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    max_uses = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    snapshot = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="A snapshot of the application: the first target of devices registering.",
    )


class ProvisioningTokenCreatedSerializer(ProvisioningTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The raw token, shown once.")

    class Meta(ProvisioningTokenSerializer.Meta):
        fields: tuple[str, ...] = (*ProvisioningTokenSerializer.Meta.fields, "token")
        read_only_fields: tuple[str, ...] = fields


class DeviceGroupSerializer(serializers.ModelSerializer[DeviceGroup]):
    class Meta:
        model = DeviceGroup
        fields = ("id", "name", "description", "env", "created_at", "updated_at")
        read_only_fields = fields


class DeviceGroupWriteSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    env = _env(required=False)


class DeviceGroupUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    env = _env(required=False)


class DeviceRegisterSerializer(serializers.Serializer[Any]):
    """The registration body (docs/device-protocol.md); validated by the service."""

    token = serializers.CharField(help_text="mft_… provisioning token or MFR-… code.")
    name = serializers.CharField(required=False)
    sealing_key = serializers.CharField(help_text="Base64 X25519 public key (32 bytes).")
    agent_version = serializers.CharField(required=False)
    hostname = serializers.CharField(required=False)


class DeviceRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    team = serializers.CharField(read_only=True)


class DeviceRegisteredSerializer(serializers.Serializer[Any]):
    device = DeviceRefSerializer(read_only=True)
    credential = serializers.CharField(read_only=True)
    signing_keys = serializers.ListField(child=serializers.CharField(), read_only=True)
    protocol = serializers.IntegerField(read_only=True)
    heartbeat_seconds = serializers.IntegerField(read_only=True)


class DeviceSelfSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    signing_keys = serializers.ListField(child=serializers.CharField(), read_only=True)


class DeviceErrorSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(read_only=True)
    message = serializers.CharField(read_only=True)
