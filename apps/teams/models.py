"""Tenancy: teams, their applications, memberships, invitations and per-application overrides."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from apps.core.models import TeamOwned, TimeStamped
from apps.rbac.permissions import OVERRIDE_CHOICES, ROLE_CHOICES

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$"
slug_validator = RegexValidator(
    SLUG_PATTERN,
    "Use 1 to 50 lower-case letters, digits and hyphens, not starting or ending with a hyphen.",
)


class Team(TimeStamped):
    """A tenant. Every team-owned row hangs off one of these."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True, validators=[slug_validator])

    class Meta:
        ordering = ("name", "id")

    def __str__(self) -> str:
        return self.name


class Application(TeamOwned):
    """A group of flows, devices and pipelines inside a team."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="applications")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, validators=[slug_validator])
    description = models.TextField(blank=True, max_length=2000)

    class Meta:
        ordering = ("name", "id")
        constraints = [
            models.UniqueConstraint(fields=["team", "slug"], name="application_slug_unique_in_team")
        ]

    def __str__(self) -> str:
        return self.name


class Membership(TeamOwned):
    """A user's place in a team: a role, optionally refined by a custom role."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=ROLE_CHOICES)
    custom_role = models.ForeignKey(
        "rbac.CustomRole",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="memberships",
    )

    class Meta:
        ordering = ("team_id", "user__email")
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_unique_per_team")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.team_id}:{self.role}"


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    REVOKED = "revoked", "Revoked"


class Invitation(TeamOwned):
    """An invitation by email; the link carries a secret whose sha256 is stored here."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=ROLE_CHOICES)
    token_hash = models.CharField(max_length=64, unique=True)
    inviter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=InvitationStatus.choices, default=InvitationStatus.PENDING
    )
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["team", "email"],
                condition=models.Q(status="pending"),
                name="invitation_one_pending_per_email",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.team_id} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()


class ApplicationRoleOverride(TimeStamped):
    """A member's role inside one application, replacing the team role there ("none": no access).

    The one store of application overrides: access decisions, the override lists and the audit
    trail all read these rows (the foreign keys keep them inside one team and remove them with
    the member or the application).
    """

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="overrides")
    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="role_overrides"
    )
    role = models.CharField(max_length=20, choices=OVERRIDE_CHOICES)

    class Meta:
        ordering = ("application_id", "membership_id")
        constraints = [
            models.UniqueConstraint(
                fields=["membership", "application"], name="override_unique_per_application"
            )
        ]

    def __str__(self) -> str:
        return f"{self.membership_id}@{self.application_id}:{self.role}"
