"""Invitation services: create (and email), accept, decline, revoke."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from apps.accounts.principal import Principal
from apps.audit.services import audit_record
from apps.core.emails import normalize_email
from apps.core.errors import Conflict, PermissionDenied, ValidationError
from apps.rbac.permissions import ROLES, Role, role_at_least
from apps.teams.access import require_team_permission
from apps.teams.models import Invitation, InvitationStatus, Membership, Team
from apps.teams.services._common import lock_team

INVITATION_VALID_FOR = timedelta(days=7)
# The page that shows an invitation and its accept/decline buttons (served by the pages app).
INVITATION_PATH = "/invitations/{token}/"


def hash_invitation_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedInvitation:
    """A new invitation and the link secret, which only the email and the caller ever see."""

    invitation: Invitation
    secret: str
    link: str


def invitation_link(secret: str, base_url: str | None = None) -> str:
    """The link in the email: under ``base_url`` (the address the inviter used) if given, else
    under ``MANIFOLD_BASE_URL`` (invitations made outside a request)."""
    path = INVITATION_PATH.format(token=secret)
    base = str(base_url or getattr(settings, "MANIFOLD_BASE_URL", None) or "http://127.0.0.1:8000")
    return base.rstrip("/") + path


def _send_invitation_email(email: str, team_name: str, inviter: str, link: str) -> None:
    send_mail(
        subject=f"You are invited to join {team_name} on Manifold",
        message=(
            f"{inviter} invited you to the team {team_name} on Manifold.\n\n"
            f"Accept or decline here (valid for {INVITATION_VALID_FOR.days} days):\n{link}\n"
        ),
        from_email=None,
        recipient_list=[email],
    )


def _snapshot(invitation: Invitation) -> dict[str, str]:
    return {"email": invitation.email, "role": invitation.role, "status": invitation.status}


def invitation_create(
    *,
    principal: Principal,
    team: Team,
    email: str,
    role: str,
    base_url: str | None = None,
) -> CreatedInvitation:
    """Invite an email address at a role; the email goes out after commit.

    Inviting needs ``member:invite``, and inviting an owner ``member:invite_owner`` as well.
    """
    email = normalize_email(email)
    if role not in ROLES:
        raise ValidationError(
            f"Unknown role {role!r}.", fields={"role": f"Choose one of {', '.join(ROLES)}."}
        )
    inviter = principal.require_user("invite people")
    with transaction.atomic():
        lock_team(team)
        access = require_team_permission(principal, team, "member:invite")
        if role == Role.OWNER and not access.allows("member:invite_owner"):
            raise PermissionDenied("Only a team owner can invite owners.")
        if not access.is_owner and not role_at_least(access.membership.role, role):
            # A custom role may hold member:invite; it never lifts anyone above its holder.
            raise PermissionDenied(
                f"You cannot invite someone as {role}: that role is above your own "
                f"({access.membership.role})."
            )
        if Membership.objects.filter(team=team, user__email__iexact=email).exists():
            raise Conflict(f"{email} is already a member of {team.name}.", code="already_member")
        if Invitation.objects.filter(
            team=team, email=email, status=InvitationStatus.PENDING, expires_at__gt=timezone.now()
        ).exists():
            raise Conflict(f"{email} already has a pending invitation.", code="already_invited")
        # An expired pending invitation stays in the list as expired; free the unique slot.
        Invitation.objects.filter(team=team, email=email, status=InvitationStatus.PENDING).update(
            status=InvitationStatus.REVOKED, responded_at=timezone.now()
        )
        secret = secrets.token_urlsafe(32)
        invitation = Invitation.objects.create(
            team=team,
            email=email,
            role=role,
            token_hash=hash_invitation_token(secret),
            inviter=inviter,
            expires_at=timezone.now() + INVITATION_VALID_FOR,
        )
        link = invitation_link(secret, base_url)
        audit_record(
            event="team.invitation.created",
            principal=principal,
            team=team,
            target=invitation,
            after=_snapshot(invitation),
        )
        transaction.on_commit(
            partial(_send_invitation_email, email, team.name, inviter.get_full_name(), link)
        )
    return CreatedInvitation(invitation=invitation, secret=secret, link=link)


def _lock_pending(invitation: Invitation, *, allow_expired: bool = False) -> Invitation:
    locked = Invitation.objects.select_for_update().select_related("team").get(pk=invitation.pk)
    if locked.status != InvitationStatus.PENDING:
        raise Conflict(f"This invitation was already {locked.status}.", code="invitation_used")
    if not allow_expired and locked.is_expired:
        raise Conflict("This invitation has expired; ask for a new one.", code="invitation_expired")
    return locked


def _close(
    invitation: Invitation,
    status: InvitationStatus,
    event: str,
    *,
    principal: Principal,
    before: dict[str, str] | None = None,
) -> None:
    """Record the answer on a locked pending invitation and audit it (inside the transaction)."""
    invitation.status = status
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at", "updated_at"])
    audit_record(
        event=event,
        principal=principal,
        team=invitation.team,
        target=invitation,
        before=before,
        after=_snapshot(invitation),
    )


def _check_invitee(principal: Principal, invitation: Invitation) -> None:
    # Joining or refusing another team is beyond a team-scoped token, and a write.
    principal.require_writable("answer invitations")
    principal.require_unscoped("answer invitations")
    # The link alone is not enough: it may have been forwarded. Only the invited address answers.
    if principal.require_user("answer an invitation").email.lower() != invitation.email.lower():
        raise PermissionDenied(
            f"This invitation is for {invitation.email}; sign in with that address to answer it."
        )


def invitation_accept(*, principal: Principal, invitation: Invitation) -> Membership:
    """Join the team at the invited role."""
    user = principal.require_user("answer an invitation")
    with transaction.atomic():
        lock_team(invitation.team)
        invitation = _lock_pending(invitation)
        _check_invitee(principal, invitation)
        if Membership.objects.filter(team=invitation.team, user=user).exists():
            raise Conflict("You are already a member of this team.", code="already_member")
        membership = Membership.objects.create(
            team=invitation.team, user=user, role=invitation.role
        )
        _close(
            invitation,
            InvitationStatus.ACCEPTED,
            "team.invitation.accepted",
            principal=principal,
        )
        audit_record(
            event="team.member.added",
            principal=principal,
            team=invitation.team,
            target=membership,
            after={"user": user.email, "role": membership.role},
        )
    return membership


def invitation_decline(*, principal: Principal, invitation: Invitation) -> Invitation:
    """Say no to an invitation."""
    with transaction.atomic():
        invitation = _lock_pending(invitation)
        _check_invitee(principal, invitation)
        _close(
            invitation,
            InvitationStatus.DECLINED,
            "team.invitation.declined",
            principal=principal,
        )
    return invitation


def invitation_revoke(*, principal: Principal, invitation: Invitation) -> Invitation:
    """Withdraw a pending invitation (expired ones too, to tidy the list)."""
    with transaction.atomic():
        locked = _lock_pending(invitation, allow_expired=True)
        _close(
            locked,
            InvitationStatus.REVOKED,
            "team.invitation.revoked",
            principal=principal,
            before=_snapshot(locked),
        )
    return locked
