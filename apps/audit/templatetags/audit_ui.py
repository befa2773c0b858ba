"""How audit events read on the pages."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def audit_target(event: Any) -> str:
    """A person-readable target: memberships are shown by the member's email, not their id."""
    if event.target_type in {"teams.membership", "teams.applicationroleoverride"}:
        for details in (event.after, event.before):
            if isinstance(details, dict) and isinstance(details.get("user"), str):
                return str(details["user"])
    return str(event.target_label or "—")


@register.filter
def audit_json(value: Any) -> str:
    """Before/after details as indented JSON for the expandable details cell."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
