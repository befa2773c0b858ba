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


# One sentence and one icon per event. "{target}" is the person-readable target; an event that is
# missing here reads as its code, so a new event is never hidden, only plainer.
SENTENCES: dict[str, tuple[str, str]] = {
    "account.password.changed": ("key", "changed their password"),
    "account.password.reset": ("key", "reset their password by email"),
    "account.password.reset_requested": ("key", "asked for a password reset"),
    "account.token.created": ("key", "created the access token {target}"),
    "account.token.revoked": ("remove", "revoked the access token {target}"),
    "account.user.created": ("person", "created the account {target}"),
    "audit.events.purged": ("remove", "purged audit events past the retention period"),
    "team.application.created": ("add", "created the application {target}"),
    "team.application.deleted": ("remove", "deleted the application {target}"),
    "team.application.updated": ("edit", "changed the application {target}"),
    "team.application_role.removed": ("shield", "gave {target} their team role back here"),
    "team.application_role.set": ("shield", "set the role of {target} in an application"),
    "team.audit_settings.updated": ("edit", "changed how long the audit log is kept"),
    "team.custom_role.created": ("shield", "created the custom role {target}"),
    "team.custom_role.deleted": ("remove", "deleted the custom role {target}"),
    "team.custom_role.updated": ("shield", "changed the custom role {target}"),
    "team.invitation.accepted": ("person", "accepted the invitation for {target}"),
    "team.invitation.created": ("mail", "invited {target}"),
    "team.invitation.declined": ("remove", "declined the invitation for {target}"),
    "team.invitation.revoked": ("remove", "revoked the invitation for {target}"),
    "team.member.added": ("person", "added {target} to the team"),
    "team.member.left": ("remove", "left the team"),
    "team.member.removed": ("remove", "removed {target} from the team"),
    "team.member.role_changed": ("shield", "changed the role of {target}"),
    "team.team.created": ("add", "created the team {target}"),
    "team.team.deleted": ("remove", "deleted the team {target}"),
    "team.team.updated": ("edit", "changed the team {target}"),
}
ICONS = {
    "add": "+",
    "remove": "\u2212",  # minus sign: the same width as the plus
    "edit": "✎",
    "key": "⚿",
    "person": "●",
    "shield": "◆",
    "mail": "✉",
}


@register.filter
def audit_sentence(event: Any) -> str:
    """What happened, in words, without the actor (the template puts the actor first)."""
    known = SENTENCES.get(event.event)
    if known is None:
        return f"{event.event} {audit_target(event)}"
    return known[1].format(target=audit_target(event))


@register.filter
def audit_icon(event: Any) -> str:
    """The icon kind of an event (add, remove, edit, key, person, shield, mail, other)."""
    known = SENTENCES.get(event.event)
    return known[0] if known else "other"


@register.filter
def audit_glyph(kind: str) -> str:
    return ICONS.get(kind, "•")
