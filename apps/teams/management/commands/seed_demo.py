"""``manage.py seed_demo``: the demo team "Acme Plant", application "Line 1" and its owner.

Idempotent. The owner's password is random, generated once and kept in ``<VAR_DIR>/demo-login.txt``
(mode 0600; the password, then the email) so every run can print the same login (``config.run``
frames it once the server answers); a deployment never gets a known password.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.accounts.services import user_create
from apps.teams.models import Application, Team
from apps.teams.services import application_create, team_create

DEMO_EMAIL = "owner@acme.example"
DEMO_TEAM = ("Acme Plant", "acme")
DEMO_APPLICATION = ("Line 1", "line-1")


def _login_file() -> Path:
    return Path(settings.VAR_DIR) / "demo-login.txt"


def _remembered_password() -> str | None:
    try:
        lines = _login_file().read_text().splitlines()
    except FileNotFoundError:
        return None
    return (lines[0].strip() or None) if lines else None


def _remember(password: str) -> None:
    path = _login_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(f"{password}\n{DEMO_EMAIL}\n")


class Command(BaseCommand):
    help = "Create (once) the demo team, application and owner account, and print the login."

    def handle(self, *args: Any, **options: Any) -> None:
        password = _remembered_password()
        with transaction.atomic():
            owner = User.objects.filter(email=DEMO_EMAIL).first()
            if owner is None:
                password = password or f"demo-{secrets.token_urlsafe(12)}"
                # The demo owner also administers the platform, so a newcomer can see every page.
                owner = user_create(
                    email=DEMO_EMAIL,
                    password=password,
                    full_name="Demo Owner",
                    is_platform_admin=True,
                )
            elif password is None or not owner.check_password(password):
                # The remembered login was lost: issue a new one rather than print a wrong one.
                password = f"demo-{secrets.token_urlsafe(12)}"
                owner.set_password(password)
                owner.save(update_fields=["password"])
            team = Team.objects.filter(slug=DEMO_TEAM[1]).first()
            if team is None:
                team = team_create(
                    principal=Principal.for_user(owner), name=DEMO_TEAM[0], slug=DEMO_TEAM[1]
                )
            if not Application.objects.filter(team=team, slug=DEMO_APPLICATION[1]).exists():
                application_create(
                    principal=Principal.for_user(owner),
                    team=team,
                    name=DEMO_APPLICATION[0],
                    slug=DEMO_APPLICATION[1],
                )
        _remember(password)
        self.stdout.write(
            f"Demo team '{team.name}' (/{team.slug}) with application '{DEMO_APPLICATION[0]}'.\n"
            f"Log in as {DEMO_EMAIL} with password {password} (team owner and platform admin)\n"
        )
