"""``manage.py audit_anchor [--all]``: checkpoint the audit chain heads outside the database now
(what the beat task does every few minutes), e.g. before a backup or from cron."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.audit.anchors import anchor_file, audit_anchor_write


class Command(BaseCommand):
    help = "Append signed checkpoints of the audit chain heads to AUDIT_ANCHOR_FILE and syslog."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--all", action="store_true", help="Checkpoint every chain, moved or not."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        anchors = audit_anchor_write(force=options["all"])
        self.stdout.write(f"{len(anchors)} chain head(s) anchored in {anchor_file()}.")
