"""Reads of the audit trail. Every selector is filtered to one team first."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, time
from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from apps.audit.models import DEFAULT_RETENTION_DAYS, AuditEvent, AuditSettings


def _as_datetime(value: date | datetime, *, end_of_day: bool) -> datetime:
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    moment = datetime.combine(value, time.max if end_of_day else time.min)
    return timezone.make_aware(moment)


def audit_event_list(
    *,
    team: Any,
    hidden_applications: Collection[int],
    application: Any = None,
    event_prefix: str | None = None,
    actor: str | None = None,
    actor_type: str | None = None,
    date_from: date | datetime | None = None,
    date_to: date | datetime | None = None,
    text: str | None = None,
) -> QuerySet[AuditEvent]:
    """The team's events, newest first, narrowed by the given filters.

    Events not sealed into the chain yet are listed too (``seq``/``hash`` still None).

    ``application`` is an Application of this team (or its id); ``event_prefix`` matches whole
    dotted segments (``team.member`` matches ``team.member.added``); ``actor`` matches the actor
    id exactly or the actor label partially; a plain ``date`` for ``date_to`` includes that day.
    ``hidden_applications`` (required, so no view can forget it) are the ids of the applications
    the reader has "no access" to: their events are left out of every view of the trail.
    """
    events = _visible(team, hidden_applications)
    if application is not None:
        application_key = getattr(application, "pk", application)
        events = events.filter(application_key=application_key)
    if event_prefix:
        prefix = event_prefix.rstrip(".")
        events = events.filter(Q(event=prefix) | Q(event__startswith=prefix + "."))
    if actor:
        events = events.filter(Q(actor_id=actor) | Q(actor_label__icontains=actor))
    if actor_type:
        events = events.filter(actor_type=actor_type)
    if date_from is not None:
        events = events.filter(created_at__gte=_as_datetime(date_from, end_of_day=False))
    if date_to is not None:
        events = events.filter(created_at__lte=_as_datetime(date_to, end_of_day=True))
    if text:
        events = events.filter(
            Q(event__icontains=text)
            | Q(actor_label__icontains=text)
            | Q(target_label__icontains=text)
            | Q(target_type__icontains=text)
            | Q(application_name__icontains=text)
        )
    # Unsealed rows (seq NULL) are the newest: first, in append order.
    return events.order_by(F("seq").desc(nulls_first=True), "-id")


def audit_event_get(
    *, team: Any, hidden_applications: Collection[int], event_id: int
) -> AuditEvent | None:
    """One event of this team, or None (another team's id and an event of a hidden application
    are indistinguishable from missing)."""
    return _visible(team, hidden_applications).filter(pk=event_id).first()


def _visible(team: Any, hidden_applications: Collection[int]) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(team_key=team.pk)
    if hidden_applications:
        events = events.exclude(application_key__in=list(hidden_applications))
    return events


def audit_retention_days_get(*, team: Any) -> int:
    """The team's retention in days (the default when never configured)."""
    configured = (
        AuditSettings.objects.filter(team_id=team.pk)
        .values_list("audit_retention_days", flat=True)
        .first()
    )
    return DEFAULT_RETENTION_DAYS if configured is None else int(configured)
