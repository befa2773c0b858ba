"""``{% development_instance_card %}``: the application overview's development instance card."""

from __future__ import annotations

from typing import Any

from django import template

from apps.devices.services.hosting import hosted_instance_of
from apps.teams.access import TeamAccess

register = template.Library()


@register.inclusion_tag("devices/_development_instance.html", takes_context=True)
def development_instance_card(context: dict[str, Any]) -> dict[str, Any]:
    """Shown to members who may read the application's devices; buttons to those who may
    manage them (the API checks again)."""
    access: TeamAccess = context["access"]
    application = context["application"]
    readable = access.allows("device:read", application)
    return {
        "team": access.team,
        "application": application,
        "readable": readable,
        "manageable": access.allows("device:manage", application),
        "instance": hosted_instance_of(application) if readable else None,
    }
