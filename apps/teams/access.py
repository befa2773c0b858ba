"""Ids and slugs become objects only here, with the permission check.

Missing and foreign objects answer the same 404 (never reveal another team's data); an object the
actor can see but may not act on answers 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.core.errors import NotFound, PermissionDenied
from apps.core.ids import parse_id
from apps.rbac.permissions import NO_ACCESS, Grant, is_full_owner, permission_spec
from apps.teams.models import Application, ApplicationRoleOverride, Invitation, Membership, Team
from apps.teams.selectors import application_override_roles


@dataclass
class TeamAccess:
    """A principal inside one team: the membership plus the token limit, evaluated per request."""

    principal: Principal
    team: Team
    membership: Membership
    _overrides: dict[int, str] | None = field(default=None, repr=False)

    @property
    def read_only(self) -> bool:
        return self.principal.read_only

    @property
    def is_owner(self) -> bool:
        return is_full_owner(self.membership)

    def application_role(self, application: Application) -> str | None:
        return self._application_role(application.pk)

    def _application_role(self, application_id: int) -> str | None:
        if self.is_owner:
            return None
        if self._overrides is None:
            self._overrides = application_override_roles(self.membership)
        return self._overrides.get(application_id)

    def may_see(self, permission: str, application_id: int | None = None) -> bool:
        """Whether an event needing ``permission`` (about one application, if given) may reach
        this member; "no access" to the application hides it whatever the key."""
        if application_id is None:
            return self.allows(permission)
        role = self._application_role(application_id)
        if role == NO_ACCESS:
            return False
        return self._grant(role).allows(permission)

    def hidden_application_ids(self) -> frozenset[int]:
        """Applications this member has "no access" to: hidden from lists and the audit trail."""
        if self.is_owner:
            return frozenset()
        if self._overrides is None:
            self._overrides = application_override_roles(self.membership)
        return frozenset(pk for pk, role in self._overrides.items() if role == NO_ACCESS)

    def fingerprint(self) -> tuple[object, ...]:
        """A value that changes whenever what this member may do or see changes: role, custom
        role and its keys, application overrides (as loaded: ``access_team_for_user`` loads them,
        so sockets compare it on the event loop without a query)."""
        custom = self.membership.custom_role
        return (
            self.membership.role,
            custom.pk if custom is not None else None,
            tuple(sorted(custom.permission_keys)) if custom is not None else (),
            tuple(sorted((self._overrides or {}).items())),
        )

    def grant(self, application: Application | None = None) -> Grant:
        return self._grant(self._application_role(application.pk) if application else None)

    def _grant(self, application_role: str | None) -> Grant:
        custom = self.membership.custom_role
        return Grant(
            role=self.membership.role,
            custom_keys=custom.permission_keys if custom is not None else None,
            application_role=application_role,
            token_read_only=self.read_only,
        )

    def allows(self, permission: str, application: Application | None = None) -> bool:
        return self.grant(application).allows(permission)

    def require(self, permission: str, application: Application | None = None) -> None:
        """Raise PermissionDenied (403) unless the permission is granted."""
        if not self.allows(permission, application):
            spec = permission_spec(permission)
            reason = " (read-only token)" if self.read_only and not spec.read_only else ""
            raise PermissionDenied(f"You do not have the {permission!r} permission{reason}.")


def _access(principal: Principal, **team_lookup: object) -> TeamAccess:
    user = principal.user
    if user is None or not user.is_authenticated:
        raise NotFound("Team not found.")
    membership = (
        Membership.objects.select_related("team", "custom_role", "user")
        .filter(user=user, **team_lookup)
        .first()
    )
    if membership is None:
        raise NotFound("Team not found.")
    token = principal.token
    outside_scope = (
        token is not None
        and not token.all_teams
        and not token.teams.filter(pk=membership.team_id).exists()
    )
    if outside_scope:
        raise NotFound("Team not found.")
    return TeamAccess(principal=principal, team=membership.team, membership=membership)


def team_access(principal: Principal, slug: str) -> TeamAccess:
    """The principal's membership of the team named by ``slug``; 404 for missing, foreign, or
    outside the token's team scope (and for principals that are not people)."""
    if not isinstance(slug, str):
        raise NotFound("Team not found.")
    return _access(principal, team__slug=slug)


def require_team_permission(principal: Principal, team: Team, permission: str) -> TeamAccess:
    """For services handed a team object: the principal must hold ``permission`` in it.

    The same resolution as ``team_access`` (membership, token scope), but a principal with no
    access at all is told 403 like one lacking the key: the team was already named to them.
    """
    try:
        access = _access(principal, team_id=team.pk)
    except NotFound:
        raise PermissionDenied(f"You do not have the {permission!r} permission.") from None
    access.require(permission)
    return access


def access_team(principal: Principal, slug: str, permission: str) -> Team:
    """The team named by ``slug`` if the principal holds ``permission`` there."""
    access = team_access(principal, slug)
    access.require(permission)
    return access.team


def access_team_for_user(user: User, slug: str, permission: str) -> TeamAccess:
    """The access of a signed-in user holding ``permission`` (team websockets, whose scope holds
    the user), with its overrides loaded so ``may_see`` answers on the event loop without a query.
    """
    access = team_access(Principal.for_user(user), slug)
    access.require(permission)
    access.hidden_application_ids()
    return access


def access_application(access: TeamAccess, slug: str, permission: str) -> Application:
    """An application of the accessed team by slug. "No access" overrides answer 404."""
    application = Application.objects.filter(team=access.team, slug=str(slug)).first()
    if application is None or access.application_role(application) == NO_ACCESS:
        raise NotFound("Application not found.")
    access.require(permission, application)
    return application


def access_membership(access: TeamAccess, membership_id: object, permission: str) -> Membership:
    """A membership of the accessed team by id."""
    access.require(permission)
    pk = parse_id(membership_id)
    if pk is None:
        raise NotFound("Member not found.")
    membership = (
        Membership.objects.select_related("user", "custom_role", "team")
        .filter(team=access.team, pk=pk)
        .first()
    )
    if membership is None:
        raise NotFound("Member not found.")
    return membership


def access_invitation(access: TeamAccess, invitation_id: object, permission: str) -> Invitation:
    """An invitation of the accessed team by id."""
    access.require(permission)
    pk = parse_id(invitation_id)
    if pk is None:
        raise NotFound("Invitation not found.")
    invitation = Invitation.objects.filter(team=access.team, pk=pk).first()
    if invitation is None:
        raise NotFound("Invitation not found.")
    return invitation


def access_invitation_by_token(principal: Principal, raw_token: str) -> Invitation:
    """The invitation a link token names, for the invited address only (403 for anyone else)."""
    from apps.teams.services import hash_invitation_token

    principal.require_writable("answer invitations")
    principal.require_unscoped("answer invitations")
    invitation = (
        Invitation.objects.select_related("team", "inviter")
        .filter(token_hash=hash_invitation_token(str(raw_token)))
        .first()
    )
    if invitation is None:
        raise NotFound("Invitation not found.")
    # A forwarded link must not show the team to someone else; the address is not repeated
    # here because the holder of a forwarded link should not learn it either.
    if principal.require_user("answer an invitation").email.lower() != invitation.email.lower():
        raise PermissionDenied(
            "This invitation was sent to another email address; "
            "sign in with that address to answer it."
        )
    return invitation


def access_invitation_for_signup(raw_token: str) -> Invitation:
    """The pending, unexpired invitation a link names, for a visitor without an account yet.

    Holding the link is the proof (it went to the invited address), so sign-up may show the
    team and the address; anything else is the same 404.
    """
    from apps.teams.models import InvitationStatus
    from apps.teams.services import hash_invitation_token

    invitation = (
        Invitation.objects.select_related("team", "inviter")
        .filter(token_hash=hash_invitation_token(str(raw_token)), status=InvitationStatus.PENDING)
        .first()
    )
    if invitation is None or invitation.is_expired:
        raise NotFound("This invitation link is not valid any more.")
    return invitation


def access_override(
    access: TeamAccess, application: Application, membership_id: object, permission: str
) -> ApplicationRoleOverride:
    """The override of one member in one application of the accessed team."""
    membership = access_membership(access, membership_id, permission)
    override = ApplicationRoleOverride.objects.filter(
        membership=membership, application=application
    ).first()
    if override is None:
        raise NotFound("Override not found.")
    return override
