"""``seed_demo`` creates the demo once and prints a login that works, every time."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path
from typing import Any

from django.core.management import call_command

from apps.accounts.models import User
from apps.teams.models import Application, Membership, Team


def run() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_is_idempotent_and_prints_a_working_login(
    db: Any, settings: Any, tmp_path: Path
) -> None:
    settings.VAR_DIR = tmp_path
    first, second = run(), run()
    password = re.search(r"password (\S+)", first)
    assert password is not None
    assert password.group(1) in second
    owner = User.objects.get(email="owner@acme.example")
    assert owner.check_password(password.group(1))
    assert owner.is_platform_admin, "the demo owner sees the platform admin pages too"
    assert Team.objects.filter(slug="acme").count() == 1
    assert Application.objects.filter(team__slug="acme", slug="line-1").count() == 1
    assert Membership.objects.get(team__slug="acme").role == "owner"
    assert (tmp_path / "demo-login.txt").stat().st_mode & 0o077 == 0
