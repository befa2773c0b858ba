"""Writes of the audit trail. ``audit_record`` is the one way an AuditEvent comes to exist."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from django.db import connection, transaction
from django.utils import timezone

from apps.accounts.principal import Principal
from apps.audit.chain import normalise_json
from apps.audit.models import (
    MAX_RETENTION_DAYS,
    AuditChainHead,
    AuditEvent,
    AuditSettings,
)
from apps.audit.redaction import redact, redact_text
from apps.audit.sealing import audit_seal_soon, seals_inline, syslog_enabled
from apps.audit.syslog import forward_event
from apps.core.audit_context import AuditContext, current_audit_context
from apps.core.errors import ValidationError
from apps.core.realtime import broadcast_team_event

logger = logging.getLogger(__name__)
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){2,}$")
PLATFORM_CHAIN = 0


class AuditUsageError(ValueError):
    """A programming error in a call to audit_record (bad event name, foreign application...)."""


@dataclass(frozen=True)
class ActorIdentity:
    """Who did it, as stored (kind, stable id, label)."""

    type: str
    id: str
    label: str


@dataclass(frozen=True)
class AuditTarget:
    """A target that is not (or no longer) a model instance."""

    type: str
    id: str
    label: str = ""


class _TeamLike(Protocol):
    @property
    def pk(self) -> Any: ...

    @property
    def slug(self) -> str: ...


def describe_actor(principal: Principal) -> ActorIdentity:
    """The stored identity of a principal: its kind, stable id and label."""
    if not isinstance(principal, Principal):
        raise AuditUsageError(f"actor must be a Principal, not {type(principal).__name__}")
    return ActorIdentity(principal.kind, principal.identity[:64], principal.label)


def describe_target(target: Any) -> AuditTarget | None:
    if target is None or isinstance(target, AuditTarget):
        return target
    meta = getattr(target, "_meta", None)
    if meta is None or getattr(target, "pk", None) is None:
        raise AuditUsageError("target must be a saved model instance or an AuditTarget")
    return AuditTarget(f"{meta.app_label}.{meta.model_name}", str(target.pk), str(target)[:200])


def _lock_chain(chain_key: int, team_slug: str) -> AuditChainHead:
    """Return the chain head row, locked until the caller's transaction ends (inline sealing).

    On PostgreSQL the row lock serialises writers of one team's chain; on SQLite the IMMEDIATE
    transaction mode already holds the database write lock.
    """
    heads = AuditChainHead.objects.select_for_update()
    try:
        return heads.get(chain_key=chain_key)
    except AuditChainHead.DoesNotExist:
        # Two first events racing: ON CONFLICT DO NOTHING waits for the other insert, then the
        # locked read below sees the committed row.
        AuditChainHead.objects.bulk_create(
            [AuditChainHead(chain_key=chain_key, team_slug=team_slug)], ignore_conflicts=True
        )
        return heads.get(chain_key=chain_key)


def _append(row: AuditEvent, chain_key: int, team_slug: str) -> None:
    """Add the row to its chain: sealed now (inline) or unsealed for the chain's sealer."""
    if not seals_inline():
        row._appended_by_audit_record = True
        row.save()
        transaction.on_commit(partial(audit_seal_soon, chain_key))
        return
    head = _lock_chain(chain_key, team_slug)
    row.seq = head.last_seq + 1
    row.prev_hash = head.last_hash
    row.hash = row.compute_hash()
    row.save()
    head.last_seq = row.seq
    head.last_hash = row.hash
    head.team_slug = team_slug
    head.save(update_fields=["last_seq", "last_hash", "team_slug"])
    if syslog_enabled():
        transaction.on_commit(partial(forward_event, row))


def audit_record(
    *,
    event: str,
    principal: Principal,
    team: _TeamLike | None,
    application: Any = None,
    target: Any = None,
    before: Any = None,
    after: Any = None,
    context: AuditContext | None = None,
) -> AuditEvent:
    """Append one event to ``team``'s chain (``team=None``: the platform chain).

    Must run inside the caller's ``transaction.atomic()`` so the event commits or rolls back with
    the change it describes. ``before``/``after`` are JSON-normalised and scrubbed of secrets.
    The row is appended unsealed (``seq``/``hash`` None) and sealed into the chain shortly
    after commit by ``apps.audit.sealing``; on SQLite it is sealed before this returns.
    Syslog forwarding (if configured) happens after commit, once the row is sealed. ``context``
    (IP, user agent, request id) defaults to the one the middleware or a ``with audit_context``
    block set.
    """
    if not EVENT_NAME.match(event) or len(event) > 100:
        raise AuditUsageError(f"Event name {event!r} is not dotted <scope>.<resource>.<verb>")
    if not connection.in_atomic_block:
        raise AuditUsageError("audit_record() must run inside the caller's transaction.atomic()")
    chain_key = PLATFORM_CHAIN if team is None else int(team.pk)
    team_slug = "" if team is None else str(team.slug)
    application_key: int | None = None
    application_name = ""
    if application is not None:
        if team is None or getattr(application, "team_id", None) != team.pk:
            raise AuditUsageError("application does not belong to the audited team")
        application_key = int(application.pk)
        application_name = str(getattr(application, "name", ""))[:200]
    identity = describe_actor(principal)
    target_info = describe_target(target)
    origin = context if context is not None else current_audit_context()

    row = AuditEvent(
        event=event,
        actor_type=identity.type,
        actor_id=identity.id,
        actor_label=identity.label,
        team_key=chain_key,
        team_slug=team_slug,
        application_key=application_key,
        application_name=application_name,
        target_type=target_info.type if target_info else "",
        target_id=target_info.id if target_info else "",
        target_label=redact_text(target_info.label) if target_info else "",
        before=redact(normalise_json(before)),
        after=redact(normalise_json(after)),
        ip=origin.ip,
        user_agent=origin.user_agent,
        request_id=origin.request_id,
        created_at=timezone.now(),
    )
    _append(row, chain_key, team_slug)
    if team is not None:
        # Open audit pages and dashboards refresh in place; the row itself stays the truth.
        # Only to sockets that may read this row: audit:read, and the application if any.
        broadcast_team_event(
            chain_key,
            event,
            {"seq": row.seq, "id": row.pk},
            permission="audit:read",
            application_id=application_key,
        )
    return row


def audit_settings_update(*, principal: Principal, team: Any, retention_days: Any) -> AuditSettings:
    """Set the team's audit retention (1 to 3650 days); writes ``team.audit_settings.updated``."""
    if isinstance(retention_days, bool) or not isinstance(retention_days, int | str):
        raise ValidationError(
            "Retention must be a whole number of days.",
            fields={"audit_retention_days": "Enter a whole number of days."},
        )
    try:
        days = int(retention_days)
    except ValueError:
        raise ValidationError(
            "Retention must be a whole number of days.",
            fields={"audit_retention_days": "Enter a whole number of days."},
        ) from None
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise ValidationError(
            f"Retention must be between 1 and {MAX_RETENTION_DAYS} days.",
            fields={"audit_retention_days": f"Enter 1 to {MAX_RETENTION_DAYS} days."},
        )
    with transaction.atomic():
        current, _ = AuditSettings.objects.select_for_update().get_or_create(team_id=team.pk)
        before = current.audit_retention_days
        current.audit_retention_days = days
        current.save(update_fields=["audit_retention_days", "updated_at"])
        audit_record(
            event="team.audit_settings.updated",
            principal=principal,
            team=team,
            target=current,
            before={"audit_retention_days": before},
            after={"audit_retention_days": days},
        )
    return current
