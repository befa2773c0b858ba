"""``manage.py demo_device --flows FILE --token-file FILE [--registered]``: the demo device's
side of the platform, for ``make run`` (config/run.py).

Idempotent. In the demo team's application (``seed_demo``) it keeps one snapshot of the demo
runner's flows (a new one only when the flows changed), and, unless the runner is already
registered (``--registered``), writes a one-use provisioning token (1 h) to ``--token-file``
(0600) that registers the runner into that application with that snapshot as its target. The
runner registers with it (config/demo_runner.py) and applies the signed target like any device.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.devices.services import provisioning_token_create
from apps.snapshots.models import Snapshot
from apps.snapshots.services import snapshot_create
from apps.teams.models import Application

DEMO_EMAIL = "owner@acme.example"
DEMO_TEAM_SLUG = "acme"
DEMO_APPLICATION_SLUG = "line-1"
SNAPSHOT_NAME = "motor-anomaly"
DEVICE_NAME = "motor-3 edge"


class Command(BaseCommand):
    help = "Snapshot the demo runner's flows and issue the token that registers it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--flows", required=True, help="the demo runner's flows.json")
        parser.add_argument("--token-file", required=True, help="where to write the token")
        parser.add_argument(
            "--registered", action="store_true", help="the runner already has an identity"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        application = (
            Application.objects.select_related("team")
            .filter(team__slug=DEMO_TEAM_SLUG, slug=DEMO_APPLICATION_SLUG)
            .first()
        )
        owner = User.objects.filter(email=DEMO_EMAIL).first()
        if application is None or owner is None:
            raise CommandError("no demo team: run `manage.py seed_demo` first")
        try:
            flows = json.loads(Path(options["flows"]).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read the demo flows: {exc}") from None
        principal = Principal.for_user(owner)
        with transaction.atomic():
            snapshot = self._snapshot(principal, application, flows)
            if options["registered"]:
                self.stdout.write(f"demo device: snapshot '{snapshot.name}' (#{snapshot.pk})")
                return
            _, raw = provisioning_token_create(
                principal=principal,
                team=application.team,
                name=f"{DEVICE_NAME} (make run)",
                application=application,
                snapshot=snapshot,
                max_uses=1,
                expires_at=timezone.now() + timedelta(hours=1),
            )
        path = Path(options["token_file"])
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(raw + "\n")
        self.stdout.write(
            f"demo device: snapshot '{snapshot.name}' (#{snapshot.pk}), registration token in "
            f"{path}"
        )

    @staticmethod
    def _snapshot(principal: Principal, application: Application, flows: Any) -> Snapshot:
        """The latest demo snapshot when it holds these flows, else a new one after it."""
        latest = (
            Snapshot.objects.filter(application=application, name__startswith=SNAPSHOT_NAME)
            .order_by("-created_at", "-id")
            .first()
        )
        if latest is not None and latest.flows == flows:
            return latest
        name = (
            SNAPSHOT_NAME if latest is None else f"{SNAPSHOT_NAME} {timezone.now():%Y-%m-%d %H:%M}"
        )
        return snapshot_create(
            principal=principal,
            application=application,
            name=name,
            description="The demo runner's motor-anomaly flow (examples/motor-anomaly.json).",
            flows=flows,
            parent=latest,
        )
