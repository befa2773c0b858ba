"""Reads of custom roles, always within one team."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from apps.rbac.models import CustomRole
from apps.teams.models import Team


def custom_role_list(*, team: Team) -> QuerySet[CustomRole]:
    """The team's custom roles with how many members hold each (one query)."""
    return (
        CustomRole.objects.filter(team=team)
        .annotate(holder_count=Count("memberships"))
        .order_by("name", "id")
    )
