"""Custom roles: named sets of permission keys a team owner defines and assigns."""

from __future__ import annotations

from django.db import models

from apps.core.models import TeamOwned


class CustomRole(TeamOwned):
    """A team-defined role. Its keys come from ``PERMISSIONS`` minus the owner-reserved ones."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="custom_roles")
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    permissions = models.JSONField(default=list)

    class Meta:
        ordering = ("name", "id")
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="custom_role_name_unique_in_team")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def permission_keys(self) -> frozenset[str]:
        # Seeing the team is implied: a role that cannot open its own team would be useless.
        return frozenset(self.permissions) | {"team:read"}
