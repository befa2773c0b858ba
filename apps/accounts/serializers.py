"""API shapes of the signed-in user and personal access tokens."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.accounts.models import PersonalAccessToken, User
from apps.accounts.services import TOKEN_DEFAULT_DAYS, TOKEN_MAX_DAYS


class MeSerializer(serializers.ModelSerializer[User]):
    class Meta:
        model = User
        fields = ("id", "email", "full_name", "is_platform_admin", "date_joined")
        read_only_fields = fields


class PasswordChangeSerializer(serializers.Serializer[Any]):
    old_password = serializers.CharField(max_length=256, trim_whitespace=False)
    new_password = serializers.CharField(max_length=256, trim_whitespace=False)


class TokenSerializer(serializers.ModelSerializer[PersonalAccessToken]):
    teams = serializers.SerializerMethodField()
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = PersonalAccessToken
        fields: tuple[str, ...] = (
            "id",
            "name",
            "prefix",
            "read_only",
            "all_teams",
            "teams",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "created_at",
            "is_active",
        )
        read_only_fields: tuple[str, ...] = fields

    def get_teams(self, token: PersonalAccessToken) -> list[str]:
        return sorted(team.slug for team in token.teams.all())


class TokenCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    # DRF Field has a read_only attribute; this is a field of the same name, not that flag.
    read_only = serializers.BooleanField(default=False)  # type: ignore[assignment]  # a field named like Field.read_only
    teams = serializers.ListField(
        child=serializers.CharField(max_length=50),
        required=False,
        allow_null=True,
        default=None,
        max_length=100,
        help_text="Team slugs the token is limited to; leave out (or null) for all your teams.",
    )
    expires_in_days = serializers.IntegerField(
        min_value=1, max_value=TOKEN_MAX_DAYS, default=TOKEN_DEFAULT_DAYS
    )


class TokenCreatedSerializer(TokenSerializer):
    """The creation answer: the only time the secret is shown."""

    token = serializers.CharField(read_only=True, help_text="The secret. Shown once.")

    class Meta(TokenSerializer.Meta):
        fields = (*TokenSerializer.Meta.fields, "token")
        read_only_fields = fields
