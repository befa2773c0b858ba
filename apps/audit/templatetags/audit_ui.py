"""How audit events read on the pages."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


# Targets that are about a person read best as that person's address.
PERSON_FIELDS = {
    "teams.membership": "user",
    "teams.applicationroleoverride": "user",
    "teams.invitation": "email",
}


@register.filter
def audit_target(event: Any) -> str:
    """A person-readable target: memberships are shown by the member's email, not their id."""
    field = PERSON_FIELDS.get(event.target_type)
    if field is not None:
        for details in (event.after, event.before):
            if isinstance(details, dict) and isinstance(details.get(field), str):
                return str(details[field])
    return str(event.target_label or "—")


@register.filter
def ago(moment: datetime) -> str:
    """Say "just now" for the last minute, else Django's "3 minutes ago"."""
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment)} ago"


@register.filter
def audit_json(value: Any) -> str:
    """Before/after details as indented JSON for the expandable details cell."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
