"""Abstract models every app builds on."""

from __future__ import annotations

from django.db import models


class TimeStamped(models.Model):
    """Creation and last-change times."""

    created_at = models.DateTimeField(auto_now_add=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True, editable=False)

    class Meta:
        abstract = True


class TeamOwned(TimeStamped):
    """A row that belongs to exactly one team; selectors and access always filter on ``team``."""

    team = models.ForeignKey(
        "teams.Team", on_delete=models.CASCADE, related_name="%(app_label)s_%(class)ss"
    )

    class Meta:
        abstract = True
