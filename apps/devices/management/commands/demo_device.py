"""``manage.py demo_device --flows FILE --token-file FILE [--models DIR] [--registered]``: the
demo device's side of the platform, for ``make run`` (config/run.py).

Idempotent. The models the flows' onnx-infer nodes name are uploaded from ``--models`` (the
demo runner's model store, where the generator put them) into the demo team's model store, so
the snapshot ships them and the device fetches them over the bundle endpoint like any model.
In the demo team's application (``seed_demo``) it keeps one snapshot of the demo
runner's flows (a new one only when the flows changed), and, unless the runner is already
registered (``--registered``), writes a one-use provisioning token (1 h) to ``--token-file``
(0600) that registers the runner into that application with that snapshot as its target. The
runner registers with it (config/demo_runner.py) and applies the signed target like any device.
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.devices.services import provisioning_token_create
from apps.snapshots.artifacts import model_upload
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
        parser.add_argument("--models", help="the model store holding the flows' models")

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
        if options["models"]:
            self._upload_models(principal, application, flows, Path(options["models"]))
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

    def _upload_models(
        self, principal: Principal, application: Application, flows: Any, models: Path
    ) -> None:
        """Upload every model an onnx-infer node of ``flows`` names (already there: no-op)."""
        nodes = flows if isinstance(flows, list) else []
        for node in nodes:
            if not isinstance(node, dict) or node.get("type") != "onnx-infer":
                continue
            sha256 = str(node.get("model") or "").lower().removeprefix("sha256:")
            if not re.fullmatch(r"[0-9a-f]{64}", sha256):
                continue  # not a hash: the snapshot's validation names the node
            path = models / f"{sha256}.onnx"
            try:
                with path.open("rb") as handle:
                    artifact, created = model_upload(
                        principal=principal,
                        team=application.team,
                        name=f"{node.get('name') or 'motor-anomaly'} (demo)",
                        chunks=iter(lambda: handle.read(1024 * 1024), b""),
                    )
            except OSError as exc:
                raise CommandError(f"cannot read the demo model {path}: {exc}") from None
            said = "uploaded" if created else "already in the team's models"
            self.stdout.write(f"demo device: model {artifact.sha256[:12]} {said}")

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
