"""API shapes of custom roles and the permission table."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.rbac.models import CustomRole
from apps.rbac.permissions import ROLES


class CustomRoleSerializer(serializers.ModelSerializer[CustomRole]):
    holder_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = CustomRole
        fields = ("id", "name", "description", "permissions", "holder_count", "created_at")
        read_only_fields = fields


class CustomRoleWriteSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default=""
    )
    permissions = serializers.ListField(child=serializers.CharField(max_length=50), max_length=100)


class CustomRoleUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    permissions = serializers.ListField(
        child=serializers.CharField(max_length=50), max_length=100, required=False
    )


class PermissionRowSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    minimum_role = serializers.ChoiceField(choices=ROLES)
    description = serializers.CharField()
    # DRF Field has a read_only attribute; this is a field of the same name, not that flag.
    read_only = serializers.BooleanField()  # type: ignore[assignment]  # a field named like Field.read_only
    application_scoped = serializers.BooleanField()
    custom_role_allowed = serializers.BooleanField()
