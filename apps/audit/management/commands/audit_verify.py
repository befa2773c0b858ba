"""``manage.py audit_verify [--team slug] [--anchors FILE]``: exit 1 and name the first broken
link per chain, and with ``--anchors`` every chain that no longer reaches its signed anchor.

Sealed events are verified; events still waiting for their sealer are counted per chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.anchors import audit_anchors_verify
from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.verification import audit_verify_all


class Command(BaseCommand):
    help = "Verify the audit hash chains; exits non-zero at the first broken link of any chain."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--team", help="Verify only this team's chain (by slug).")
        parser.add_argument(
            "--platform", action="store_true", help="Verify only the platform (no team) chain."
        )
        parser.add_argument(
            "--anchors",
            metavar="FILE",
            help="Also check every chain against the signed anchors in FILE "
            "(AUDIT_ANCHOR_FILE, or a copy from the syslog collector).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        chain_keys: list[int] | None = None
        if options["platform"]:
            chain_keys = [0]
        elif options["team"]:
            slug = options["team"]
            keys = set(
                AuditChainHead.objects.filter(team_slug=slug).values_list("chain_key", flat=True)
            )
            keys |= set(
                AuditEvent.objects.filter(team_slug=slug)
                .values_list("team_key", flat=True)
                .distinct()
            )
            keys.discard(0)
            if not keys:
                raise CommandError(f"No audit chain for team {slug!r}.")
            chain_keys = sorted(keys)
        reports = audit_verify_all(chain_keys=chain_keys)
        broken = [report for report in reports if report.broken is not None]
        for report in reports:
            name = report.team_slug or ("platform" if report.chain_key == 0 else "?")
            status = "BROKEN" if report.broken else "ok"
            waiting = f", {report.unsealed} not sealed yet" if report.unsealed else ""
            self.stdout.write(
                f"{name} (chain {report.chain_key}): {report.checked} events {status}{waiting}"
            )
        for report in broken:
            self.stderr.write(f"First broken link: {report.broken}")
        anchor_problems = self._check_anchors(options["anchors"])
        if broken:
            raise CommandError(f"{len(broken)} of {len(reports)} audit chain(s) broken.")
        if anchor_problems:
            raise CommandError(f"{anchor_problems} anchor mismatch(es): the trail was cut back.")
        self.stdout.write(self.style.SUCCESS(f"{len(reports)} audit chain(s) verified."))

    def _check_anchors(self, path: str | None) -> int:
        if not path:
            return 0
        try:
            report = audit_anchors_verify(Path(path))
        except OSError as error:
            raise CommandError(f"Cannot read the anchor file {path}: {error.strerror}.") from None
        self.stdout.write(f"anchors: {report.lines} line(s), {report.chains} chain(s) checked")
        for problem in report.problems:
            self.stderr.write(f"Anchor mismatch: {problem}")
        return len(report.problems)
