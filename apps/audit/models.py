"""The audit trail: append-only, hash-chained events, one chain per team.

Rows keep string/integer snapshots of the team, application, actor and target instead of
foreign keys: deleting a user, an application or a whole team must never touch (or cascade
into) its audit trail, and an append-only table cannot take part in ``SET_NULL`` updates.
Team-scoped chains use ``chain_key = team.pk``; platform events (no team) use chain 0.

Writers append rows *unsealed* (``seq``, ``prev_hash`` and ``hash`` NULL, ordered by the
autoincrement id) without locking anything shared; one sealer per chain (``apps.audit.sealing``)
later gives them their place in the chain. The UPDATE trigger lets exactly that one transition
through: NULL seal fields become set, nothing else changes, and a sealed row never changes again.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.db.models import F, Q

from apps.audit.chain import GENESIS_HASH, event_hash


class AuditAppendOnlyError(Exception):
    """Raised on any attempt to change or delete an audit event outside the retention purge."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """Read-only queryset: bulk writes would bypass the chain, so they are refused."""

    def update(self, **kwargs: Any) -> int:
        raise AuditAppendOnlyError("audit events are append-only: update() is refused")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditAppendOnlyError(
            "audit events are append-only: delete() is refused (retention purge is the only path)"
        )

    def bulk_create(self, *args: Any, **kwargs: Any) -> list[AuditEvent]:
        raise AuditAppendOnlyError("audit events are written one by one through audit_record()")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise AuditAppendOnlyError("audit events are append-only: bulk_update() is refused")


class ActorType(models.TextChoices):
    USER = "user", "User"
    TOKEN = "token", "Personal access token"
    DEVICE = "device", "Device"
    SYSTEM = "system", "System"


class AuditEvent(models.Model):
    """One audited action. Written only by ``apps.audit.services.audit_record``."""

    event = models.CharField(max_length=100, db_index=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True, default="")
    actor_label = models.CharField(max_length=200, blank=True, default="")
    team_key = models.BigIntegerField(help_text="Team id at the time (0 = platform scope).")
    team_slug = models.CharField(max_length=100, blank=True, default="")
    application_key = models.BigIntegerField(null=True, blank=True)
    application_name = models.CharField(max_length=200, blank=True, default="")
    target_type = models.CharField(max_length=100, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    target_label = models.CharField(max_length=200, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    request_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField()
    # NULL until the chain's sealer links the row in; the three are set together, once. NULL
    # (not "") because "not sealed yet" is a state the check constraint and trigger rely on.
    seq = models.PositiveBigIntegerField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    hash = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    objects: ClassVar[models.Manager[AuditEvent]] = AuditEventQuerySet.as_manager()
    # Set by audit_record() alone: the only caller allowed to insert an unsealed row.
    _appended_by_audit_record: bool = False

    class Meta:
        # Unsealed rows are the newest: they come first, in append order.
        ordering = ["-team_key", F("seq").desc(nulls_first=True), "-id"]
        constraints = [
            models.UniqueConstraint(fields=["team_key", "seq"], name="audit_event_unique_team_seq"),
            models.CheckConstraint(
                condition=Q(seq__isnull=True, prev_hash__isnull=True, hash__isnull=True)
                | Q(seq__isnull=False, prev_hash__isnull=False, hash__isnull=False),
                name="audit_event_sealed_together",
            ),
        ]
        indexes = [
            # The sealer's work queue: tiny, because rows leave it within a batch.
            models.Index(
                fields=["team_key", "id"],
                name="audit_event_unsealed",
                condition=Q(seq__isnull=True),
            ),
            models.Index(fields=["team_key", "created_at"], name="audit_event_team_time"),
            models.Index(fields=["team_key", "application_key", "seq"], name="audit_event_app"),
        ]

    def __str__(self) -> str:
        place = "unsealed" if self.seq is None else self.seq
        return f"{self.team_slug or 'platform'}#{place} {self.event}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditAppendOnlyError("audit events are append-only: updates are refused")
        unsealed = self.seq is None and self.prev_hash is None and self.hash is None
        if unsealed:
            if not self._appended_by_audit_record:
                raise AuditAppendOnlyError("audit events must be written through audit_record()")
        elif not self.hash or self.hash != self.compute_hash():
            raise AuditAppendOnlyError("audit events must be written through audit_record()")
        # Never an UPDATE, even when a primary key was set by hand.
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditAppendOnlyError("audit events are append-only: delete() is refused")

    @property
    def is_sealed(self) -> bool:
        return self.hash is not None

    def chain_link(self) -> tuple[int, str]:
        """``(seq, hash)`` of a sealed event: where it sits in its chain."""
        if self.seq is None or self.hash is None:
            raise AuditAppendOnlyError("an unsealed event is not linked into its chain yet")
        return self.seq, self.hash

    def hashed_fields(self) -> dict[str, Any]:
        """The fields covered by the hash, in the exact form they are hashed.

        ``request_id`` came later: it is hashed only when set, so rows written before it existed
        keep their hashes.
        """
        return {
            "event": self.event,
            "actor_type": self.actor_type,
            "actor_id": self.actor_id,
            "actor_label": self.actor_label,
            "team_key": self.team_key,
            "team_slug": self.team_slug,
            "application_key": self.application_key,
            "application_name": self.application_name,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "target_label": self.target_label,
            "before": self.before,
            "after": self.after,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "created_at": self.created_at.isoformat(),
            "seq": self.seq,
        } | ({"request_id": self.request_id} if self.request_id else {})

    def compute_hash(self) -> str:
        if self.seq is None or self.prev_hash is None:
            raise AuditAppendOnlyError("an unsealed event has no hash yet")
        return event_hash(self.hashed_fields(), self.prev_hash)


class AuditChainHead(models.Model):
    """Per-team chain state; its row lock makes one sealer (or purge) per chain at a time.

    ``anchor_seq``/``anchor_hash`` mark where the retained chain starts: after a retention purge
    the first kept event has ``seq == anchor_seq + 1`` and ``prev_hash == anchor_hash``.
    """

    chain_key = models.BigIntegerField(unique=True)
    team_slug = models.CharField(max_length=100, blank=True, default="")
    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    anchor_seq = models.PositiveBigIntegerField(default=0)
    anchor_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    purged_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"chain {self.team_slug or 'platform'} @ {self.last_seq}"


DEFAULT_RETENTION_DAYS = 365
MAX_RETENTION_DAYS = 3650


class AuditSettings(models.Model):
    """Per-team audit options, kept here so the audit app owns its own configuration."""

    team = models.OneToOneField(
        "teams.Team", on_delete=models.CASCADE, related_name="audit_settings"
    )
    audit_retention_days = models.PositiveIntegerField(default=DEFAULT_RETENTION_DAYS)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "audit settings"

    def __str__(self) -> str:
        return f"audit settings of team {self.team_id}"
