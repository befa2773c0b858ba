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
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.actors import Actor, actor_user
from apps.accounts.services import normalize_email
from apps.audit.services import audit_record
from apps.core.errors import Conflict, PermissionDenied, ValidationError
from apps.rbac.permissions import ROLES, Role
from apps.teams.models import Invitation, InvitationStatus, Membership, Team
from apps.teams.services._common import actor_membership, lock_team

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


def invitation_link(secret: str, request: HttpRequest | None) -> str:
    path = INVITATION_PATH.format(token=secret)
    if request is not None:
        return request.build_absolute_uri(path)
    base = getattr(settings, "MANIFOLD_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    return base + path


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
    actor: Actor,
    team: Team,
    email: str,
    role: str,
    request: HttpRequest | None = None,
) -> CreatedInvitation:
    """Invite an email address at a role; the email goes out after commit."""
    email = normalize_email(email)
    if role not in ROLES:
        raise ValidationError(
            f"Unknown role {role!r}.", fields={"role": f"Choose one of {', '.join(ROLES)}."}
        )
    inviter = actor_user(actor)
    with transaction.atomic():
        lock_team(team)
        own = actor_membership(actor, team)
        if role == Role.OWNER and (
            own is None or own.role != Role.OWNER or own.custom_role_id is not None
        ):
            raise PermissionDenied("Only a team owner can invite owners.")
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
        link = invitation_link(secret, request)
        audit_record(
            event="team.invitation.created",
            actor=actor,
            team=team,
            target=invitation,
            after=_snapshot(invitation),
            request=request,
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
    actor: Actor,
    request: HttpRequest | None,
    before: dict[str, str] | None = None,
) -> None:
    """Record the answer on a locked pending invitation and audit it (inside the transaction)."""
    invitation.status = status
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at", "updated_at"])
    audit_record(
        event=event,
        actor=actor,
        team=invitation.team,
        target=invitation,
        before=before,
        after=_snapshot(invitation),
        request=request,
    )


def _check_invitee(actor: Actor, invitation: Invitation) -> None:
    # The link alone is not enough: it may have been forwarded. Only the invited address answers.
    if actor_user(actor).email.lower() != invitation.email.lower():
        raise PermissionDenied(
            f"This invitation is for {invitation.email}; sign in with that address to answer it."
        )


def invitation_accept(
    *, actor: Actor, invitation: Invitation, request: HttpRequest | None = None
) -> Membership:
    """Join the team at the invited role."""
    user = actor_user(actor)
    with transaction.atomic():
        lock_team(invitation.team)
        invitation = _lock_pending(invitation)
        _check_invitee(actor, invitation)
        if Membership.objects.filter(team=invitation.team, user=user).exists():
            raise Conflict("You are already a member of this team.", code="already_member")
        membership = Membership.objects.create(
            team=invitation.team, user=user, role=invitation.role
        )
        _close(
            invitation,
            InvitationStatus.ACCEPTED,
            "team.invitation.accepted",
            actor=actor,
            request=request,
        )
        audit_record(
            event="team.member.added",
            actor=actor,
            team=invitation.team,
            target=membership,
            after={"user": user.email, "role": membership.role},
            request=request,
        )
    return membership


def invitation_decline(
    *, actor: Actor, invitation: Invitation, request: HttpRequest | None = None
) -> Invitation:
    """Say no to an invitation."""
    with transaction.atomic():
        invitation = _lock_pending(invitation)
        _check_invitee(actor, invitation)
        _close(
            invitation,
            InvitationStatus.DECLINED,
            "team.invitation.declined",
            actor=actor,
            request=request,
        )
    return invitation


def invitation_revoke(
    *, actor: Actor, invitation: Invitation, request: HttpRequest | None = None
) -> Invitation:
    """Withdraw a pending invitation (expired ones too, to tidy the list)."""
    with transaction.atomic():
        locked = _lock_pending(invitation, allow_expired=True)
        _close(
            locked,
            InvitationStatus.REVOKED,
            "team.invitation.revoked",
            actor=actor,
            request=request,
            before=_snapshot(locked),
        )
    return locked
