"""API shapes of teams, applications, members, invitations and overrides.

Write serializers validate shapes only; ids in them are resolved by the views through
``access_*`` (a foreign-team id is a 400 on that field, with nothing changed).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.rbac.permissions import OVERRIDE_ROLES, ROLES
from apps.teams.models import (
    Application,
    ApplicationRoleOverride,
    Invitation,
    Membership,
    Team,
)


class TeamSerializer(serializers.ModelSerializer[Team]):
    class Meta:
        model = Team
        fields = ("id", "name", "slug", "created_at")
        read_only_fields = fields


class TeamWriteSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    slug = serializers.CharField(max_length=50)


class TeamUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, required=False)
    slug = serializers.CharField(max_length=50, required=False)


class ApplicationSerializer(serializers.ModelSerializer[Application]):
    class Meta:
        model = Application
        fields = ("id", "name", "slug", "description", "created_at", "updated_at")
        read_only_fields = fields


class ApplicationWriteSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    slug = serializers.CharField(max_length=50)
    description = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )


class ApplicationUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, required=False)
    slug = serializers.CharField(max_length=50, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class MemberUserSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(read_only=True)
    email = serializers.EmailField(read_only=True)
    full_name = serializers.CharField(read_only=True)


class CustomRoleRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


class MembershipSerializer(serializers.ModelSerializer[Membership]):
    user = MemberUserSerializer(read_only=True)
    custom_role = CustomRoleRefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Membership
        fields = ("id", "user", "role", "custom_role", "created_at")
        read_only_fields = fields


class MembershipUpdateSerializer(serializers.Serializer[Any]):
    role = serializers.ChoiceField(choices=ROLES, required=False)
    custom_role = serializers.IntegerField(required=False, allow_null=True, min_value=1)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Give a role and/or a custom_role.")
        return attrs


class InvitationSerializer(serializers.ModelSerializer[Invitation]):
    inviter = serializers.SerializerMethodField()
    is_expired = serializers.BooleanField(read_only=True)

    class Meta:
        model = Invitation
        fields: tuple[str, ...] = (
            "id",
            "email",
            "role",
            "status",
            "inviter",
            "expires_at",
            "is_expired",
            "created_at",
            "responded_at",
        )
        read_only_fields: tuple[str, ...] = fields

    def get_inviter(self, invitation: Invitation) -> str | None:
        return invitation.inviter.email if invitation.inviter else None


class InvitationCreateSerializer(serializers.Serializer[Any]):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=ROLES)


class InvitationCreatedSerializer(InvitationSerializer):
    """The creation answer: the link is shown this once (it is also emailed)."""

    link = serializers.CharField(read_only=True)

    class Meta(InvitationSerializer.Meta):
        fields = (*InvitationSerializer.Meta.fields, "link")
        read_only_fields = fields


class InvitationPublicSerializer(serializers.ModelSerializer[Invitation]):
    """What the holder of an invitation link sees."""

    team = TeamSerializer(read_only=True)
    is_expired = serializers.BooleanField(read_only=True)

    class Meta:
        model = Invitation
        fields = ("team", "email", "role", "status", "expires_at", "is_expired")
        read_only_fields = fields


class OverrideSerializer(serializers.ModelSerializer[ApplicationRoleOverride]):
    membership = serializers.IntegerField(source="membership_id", read_only=True)
    user = MemberUserSerializer(source="membership.user", read_only=True)
    application = serializers.CharField(source="application.slug", read_only=True)

    class Meta:
        model = ApplicationRoleOverride
        fields = ("id", "membership", "user", "application", "role", "updated_at")
        read_only_fields = fields


class OverrideWriteSerializer(serializers.Serializer[Any]):
    membership = serializers.IntegerField(min_value=1)
    role = serializers.ChoiceField(choices=OVERRIDE_ROLES)
