"""Users (email login, platform admins) and personal access tokens (stored hashed)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone

from apps.core.models import TimeStamped

TOKEN_PREFIX = "mfp_"  # noqa: S105  # a public marker, not a secret


class UserManager(BaseUserManager["User"]):
    """Creation goes through ``apps.accounts.services.user_create``; this serves Django itself."""

    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(is_superuser=True, is_staff=True, is_platform_admin=True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Logs in with the email address, which is unique (stored lower-case)."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    is_platform_admin = models.BooleanField(
        default=False, help_text="Operates the installation; sees no team data by this flag alone."
    )
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ("email",)

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


class PersonalAccessToken(TimeStamped):
    """An API credential of one user. Only the sha256 of the secret is stored.

    Effective rights are the user's current rights intersected with this token's scope
    (``read_only``, and the chosen ``teams`` unless ``all_teams``), re-evaluated per request.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100)
    # First characters of the secret so people can tell their tokens apart; not enough to guess.
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    read_only = models.BooleanField(default=False)
    all_teams = models.BooleanField(default=False)
    teams = models.ManyToManyField("teams.Team", blank=True, related_name="+")
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class InstallationSettings(TimeStamped):
    """Installation-wide choices of the platform admins: one row (``pk=1``), the only store.

    ``settings.OPEN_SIGNUP_DEFAULT`` (``MANIFOLD_OPEN_SIGNUP``) gives the first value only, when
    the row is created on first read (``apps.accounts.selectors.installation_settings_get``).
    """

    SINGLETON_PK = 1

    open_signup = models.BooleanField(
        default=False, help_text="Anyone may create an account without an invitation."
    )
    updated_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "installation settings"

    def __str__(self) -> str:
        return "installation settings"
