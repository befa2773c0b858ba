"""Every write to users and access tokens. Each runs in one transaction and writes an audit row."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import SESSION_KEY, password_validation
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import (
    TOKEN_PREFIX,
    InstallationSettings,
    PersonalAccessToken,
    User,
)
from apps.accounts.principal import Principal
from apps.audit.services import audit_record
from apps.core.emails import normalize_email
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from apps.core.realtime import notify_team_access_changed

TOKEN_DEFAULT_DAYS = 90
TOKEN_MAX_DAYS = 366


def hash_token(raw: str) -> str:
    """The stored form of a secret: sha256 hex (the secret has 256 bits of entropy)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def _check_password(password: str, user: User | None, field: str = "password") -> None:
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages), fields={field: exc.messages}) from None


def user_create(
    *,
    email: str,
    password: str | None,
    full_name: str = "",
    principal: Principal | None = None,
    is_platform_admin: bool = False,
) -> User:
    """Create a local account. ``password=None`` makes an account that cannot log in yet.

    ``principal`` is whoever creates it; by default the system (sign-up, seeding, SSO).
    """
    principal = principal if principal is not None else Principal.system()
    email = normalize_email(email)
    if len(full_name) > 150:
        raise ValidationError("Name is too long.", fields={"full_name": "At most 150 characters."})
    with transaction.atomic():
        if User.objects.filter(email__iexact=email).exists():
            raise Conflict(f"An account with the email {email} already exists.", code="duplicate")
        user = User(email=email, full_name=full_name.strip(), is_platform_admin=is_platform_admin)
        if password is None:
            user.set_unusable_password()
        else:
            _check_password(password, user)
            user.set_password(password)
        user.save()
        audit_record(
            event="account.user.created",
            principal=principal,
            team=None,
            target=user,
            after={"email": user.email, "is_platform_admin": user.is_platform_admin},
        )
    return user


def password_change(
    *,
    principal: Principal,
    user: User,
    old_password: str,
    new_password: str,
) -> None:
    """Change one's own password; the old one must be right. Tokens may not do this."""
    if principal.token is not None or principal.user is None or principal.user.pk != user.pk:
        raise PermissionDenied("Only the account holder, signed in, can change the password.")
    if not user.check_password(old_password):
        raise ValidationError(
            "The current password is wrong.", fields={"old_password": "Wrong password."}
        )
    _check_password(new_password, user, field="new_password")
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        audit_record(event="account.password.changed", principal=principal, team=None, target=user)


def user_sessions_end(*, user: User, keep_session_key: str | None = None) -> int:
    """Delete every stored session signed in as ``user`` (except ``keep_session_key``).

    Database sessions carry the user id only inside their encoded payload, so this decodes the
    unexpired ones: linear in the number of live sessions, fine for the installations we target
    and only run on rare, security-relevant writes. Returns how many sessions ended.
    """
    ended = []
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.session_key == keep_session_key:
            continue
        if str(session.get_decoded().get(SESSION_KEY)) == str(user.pk):
            ended.append(session.session_key)
    if ended:
        Session.objects.filter(session_key__in=ended).delete()
    return len(ended)


def _revoke_all_tokens(user: User) -> list[str]:
    now = timezone.now()
    active = PersonalAccessToken.objects.select_for_update().filter(
        user=user, revoked_at__isnull=True, expires_at__gt=now
    )
    prefixes = sorted(active.values_list("prefix", flat=True))
    active.update(revoked_at=now, updated_at=now)
    return prefixes


def password_reset_request(*, principal: Principal, email: str) -> list[User]:
    """Record that a reset link was asked for; return the accounts a link goes to.

    The same accounts Django's reset form mails: active, with a usable password. One audit row
    (platform chain) per such account, holding no address typed by the visitor and no link or
    token. An unknown address writes nothing, so the visitor learns nothing either way.
    """
    cleaned = (email or "").strip().lower()
    users = [
        user
        for user in User.objects.filter(email__iexact=cleaned, is_active=True)
        if user.has_usable_password()
    ]
    with transaction.atomic():
        for user in users:
            audit_record(
                event="account.password.reset_requested",
                # The visitor as they are: usually anonymous, possibly signed in as someone.
                principal=principal,
                team=None,
                target=user,
            )
    return users


@dataclass(frozen=True)
class PasswordReset:
    """What a completed reset ended: other sessions and the account's access tokens."""

    sessions_ended: int
    tokens_revoked: list[str]


def password_reset_complete(
    *,
    user: User,
    new_password: str,
    keep_session_key: str | None = None,
) -> PasswordReset:
    """Set a new password through an emailed reset link (the link is checked by the caller).

    A reset is the way back into an account its holder lost control of, so everything that
    rode on the old credentials ends: every session of the user (bar ``keep_session_key``,
    the anonymous session carrying the reset) and every active personal access token, whose
    prefixes the audit row lists so the owner knows which to recreate. Tokens are revoked, not
    kept, because one minted by whoever held the old password would otherwise outlive the reset.
    """
    if not user.is_active:
        raise PermissionDenied("This account is deactivated; ask a platform admin.")
    _check_password(new_password, user, field="new_password")
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        revoked = _revoke_all_tokens(user)
        ended = user_sessions_end(user=user, keep_session_key=keep_session_key)
        audit_record(
            event="account.password.reset",
            principal=Principal.for_user(user),
            team=None,
            target=user,
            after={"logins_ended": ended, "revoked_prefixes": revoked},
        )
    return PasswordReset(sessions_ended=ended, tokens_revoked=revoked)


def _user_active_set(*, principal: Principal, user: User, active: bool) -> User:
    from apps.accounts.access import require_platform
    from apps.accounts.selectors import user_team_ids

    admin = require_platform(principal, "platform:user_manage")
    verb = "reactivate" if active else "deactivate"
    if user.pk == admin.pk:
        raise Conflict(f"You cannot {verb} your own account.", code="self")
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.is_active == active:
            state = "active" if active else "deactivated"
            raise Conflict(f"{locked.email} is already {state}.", code=f"already_{state}")
        locked.is_active = active
        locked.save(update_fields=["is_active"])
        after: dict[str, object] = {"is_active": active}
        if not active:
            team_ids = user_team_ids(user=locked)
            for team_id in team_ids:
                notify_team_access_changed(team_id)
            after |= {"logins_ended": user_sessions_end(user=locked), "teams": len(team_ids)}
        audit_record(
            event=f"platform.user.{verb}d",
            principal=principal,
            team=None,
            target=locked,
            before={"is_active": not active},
            after=after,
        )
    return locked


def user_deactivate(*, principal: Principal, user: User) -> User:
    """Platform admins: switch an account off. At once: its sessions are deleted, its tokens
    answer 401 (they are kept, not revoked, so a reactivation restores the account as it was;
    the owner or an admin can still revoke them), and every open team websocket of the user is
    told to re-check access and closes. Team data is untouched; its memberships stay."""
    return _user_active_set(principal=principal, user=user, active=False)


def user_reactivate(*, principal: Principal, user: User) -> User:
    """Platform admins: switch a deactivated account back on (it signs in afresh)."""
    return _user_active_set(principal=principal, user=user, active=True)


@dataclass(frozen=True)
class CreatedToken:
    """A new token and its secret: the only moment the secret exists outside the client."""

    token: PersonalAccessToken
    secret: str


def token_create(
    *,
    principal: Principal,
    name: str,
    read_only: bool = False,
    team_slugs: list[str] | None = None,
    expires_in_days: int = TOKEN_DEFAULT_DAYS,
) -> CreatedToken:
    """Create a token for the actor's user. ``team_slugs=None`` means all the user's teams.

    A scope above the user (a team they are not a member of) is refused; tokens cannot mint
    tokens, so a leaked token cannot outlive its own expiry.
    """
    from apps.teams.selectors import team_list_for_user

    if principal.token is not None:
        raise PermissionDenied("Access tokens cannot create tokens; sign in to create one.")
    user = principal.require_user("create access tokens")
    name = (name or "").strip()
    errors: dict[str, str] = {}
    if not name or len(name) > 100:
        errors["name"] = "Give the token a name of 1 to 100 characters."
    if not 1 <= expires_in_days <= TOKEN_MAX_DAYS:
        errors["expires_in_days"] = f"Tokens expire after 1 to {TOKEN_MAX_DAYS} days."
    teams = []
    if team_slugs is not None:
        if not team_slugs:
            errors["teams"] = "Choose at least one team, or leave teams out for all your teams."
        wanted = set(team_slugs)
        teams = list(team_list_for_user(user).filter(slug__in=wanted))
        missing = sorted(wanted - {team.slug for team in teams})
        if missing:
            errors["teams"] = f"You are not a member of: {', '.join(missing)}."
    if errors:
        raise ValidationError("The token cannot be created as requested.", fields=errors)

    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = PersonalAccessToken.objects.create(
            user=user,
            name=name,
            prefix=secret[: len(TOKEN_PREFIX) + 6],
            token_hash=hash_token(secret),
            read_only=read_only,
            all_teams=team_slugs is None,
            expires_at=timezone.now() + timedelta(days=expires_in_days),
        )
        token.teams.set(teams)
        audit_record(
            event="account.token.created",
            principal=principal,
            team=None,
            target=token,
            after={
                "name": token.name,
                "prefix": token.prefix,
                "read_only": token.read_only,
                "teams": sorted(team.slug for team in teams) if teams else "all",
                "expires_at": token.expires_at.isoformat(),
            },
        )
    return CreatedToken(token=token, secret=secret)


def token_revoke(*, principal: Principal, token: PersonalAccessToken) -> PersonalAccessToken:
    """Revoke one of the actor's own tokens; effective at the next request."""
    if principal.user is None or token.user_id != principal.user.pk:
        raise NotFound("Token not found.")
    principal.require_writable("revoke tokens")
    principal.require_unscoped("manage tokens")
    with transaction.atomic():
        locked = PersonalAccessToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is not None:
            raise Conflict("The token is already revoked.", code="already_revoked")
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at", "updated_at"])
        audit_record(
            event="account.token.revoked",
            principal=principal,
            team=None,
            target=locked,
            before={"name": locked.name, "prefix": locked.prefix},
        )
    return locked


def installation_settings_update(
    *, principal: Principal, open_signup: bool
) -> InstallationSettings:
    """Platform admins: allow or stop open (uninvited) sign-up. Invitations work either way."""
    from apps.accounts.access import require_platform
    from apps.accounts.selectors import installation_settings_get

    admin = require_platform(principal, "platform:settings_manage")
    installation_settings_get()  # the row exists from here on
    with transaction.atomic():
        row = InstallationSettings.objects.select_for_update().get(
            pk=InstallationSettings.SINGLETON_PK
        )
        if row.open_signup == open_signup:
            return row
        before = {"open_signup": row.open_signup}
        row.open_signup = open_signup
        row.updated_by = admin
        row.save(update_fields=["open_signup", "updated_by", "updated_at"])
        audit_record(
            event="platform.signup.changed",
            principal=principal,
            team=None,
            target=row,
            before=before,
            after={"open_signup": open_signup},
        )
    return row
