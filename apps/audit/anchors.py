"""External anchors of the audit chains: signed checkpoints of each chain head, kept outside
the database, so deleting the newest events and rewinding the head no longer passes
``audit_verify``.

``audit_anchor_write`` (Celery beat, every ``MANIFOLD_AUDIT_ANCHOR_INTERVAL`` seconds, default
300; or ``manage.py audit_anchor``) appends one line per chain whose head moved to
``AUDIT_ANCHOR_FILE`` (fsynced) and sends the same checkpoint to the syslog collector if one is
configured. Each line is signed with HMAC-SHA256 under
``AUDIT_ANCHOR_KEY`` (default: derived from ``SECRET_KEY``), so someone who can write the
database, or even the file, cannot forge a lower checkpoint. ``audit_anchors_verify`` checks the
database against a file: every chain must still reach its newest anchored sequence number with
the anchored hash. Put the file (or the collector) where the database's administrators cannot
rewrite it: another disk, an append-only mount, a log host.
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.crypto import salted_hmac

from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.sealing import audit_seal_pending
from apps.audit.syslog import format_anchor, send_message

ANCHOR_VERSION = 1
_SALT = "manifold.audit.anchor"


def anchor_file() -> Path:
    return Path(settings.AUDIT_ANCHOR_FILE)


def _signature(fields: dict[str, Any]) -> str:
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    key = settings.AUDIT_ANCHOR_KEY or settings.SECRET_KEY
    return salted_hmac(_SALT, payload, secret=key, algorithm="sha256").hexdigest()


def _unsigned(anchor: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in anchor.items() if name != "signature"}


def audit_anchor_write(*, force: bool = False) -> list[dict[str, Any]]:
    """Checkpoint every chain head that moved since its last checkpoint (all with ``force``).

    The heads read are the sealed ones, what ``audit_verify`` walks to: committed events still
    waiting for their sealer are sealed first, so a checkpoint covers everything committed.
    Returns the anchors written. The file write is fsynced before the syslog send, and a
    failing collector never loses the file's copy.
    """
    audit_seal_pending(wait=True)
    now = timezone.now().isoformat().replace("+00:00", "Z")
    anchors = []
    for head in AuditChainHead.objects.filter(last_seq__gt=0).order_by("chain_key"):
        if not force and cache.get(f"audit-anchor:{head.chain_key}") == head.last_seq:
            continue
        fields = {
            "v": ANCHOR_VERSION,
            "chain": head.chain_key,
            "team": head.team_slug,
            "seq": head.last_seq,
            "hash": head.last_hash,
            "at": now,
        }
        anchors.append({**fields, "signature": _signature(fields)})
    if not anchors:
        return []
    path = anchor_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(anchor, sort_keys=True) + "\n" for anchor in anchors)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, lines.encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    for anchor in anchors:
        send_message(format_anchor(anchor))
        # Only a hint to skip unchanged heads next time; a lost cache re-anchors them.
        cache.set(f"audit-anchor:{anchor['chain']}", anchor["seq"], None)
    return anchors


@dataclass(frozen=True)
class AnchorProblem:
    """A place where the database no longer matches what was anchored."""

    chain_key: int | None
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        chain = f"chain {self.chain_key}: " if self.chain_key is not None else ""
        return f"{where}{chain}{self.reason}"


@dataclass(frozen=True)
class AnchorReport:
    lines: int
    chains: int
    problems: list[AnchorProblem]


def _read(path: Path) -> tuple[int, dict[int, tuple[int, dict[str, Any]]], list[AnchorProblem]]:
    newest: dict[int, tuple[int, dict[str, Any]]] = {}
    problems = []
    count = 0
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            count += 1
            try:
                anchor = json.loads(line)
                chain, seq = int(anchor["chain"]), int(anchor["seq"])
                signed = hmac.compare_digest(
                    str(anchor["signature"]), _signature(_unsigned(anchor))
                )
            except (ValueError, KeyError, TypeError):
                problems.append(AnchorProblem(None, number, "not an anchor line"))
                continue
            if not signed:
                problems.append(
                    AnchorProblem(chain, number, "signature does not match (altered or forged)")
                )
                continue
            if chain not in newest or seq >= int(newest[chain][1]["seq"]):
                newest[chain] = (number, anchor)
    return count, newest, problems


def _check(chain: int, number: int, anchor: dict[str, Any]) -> AnchorProblem | None:
    seq, anchored_hash, at = int(anchor["seq"]), str(anchor["hash"]), anchor["at"]
    head = AuditChainHead.objects.filter(chain_key=chain).first()
    if head is None:
        return AnchorProblem(chain, number, f"anchored at seq {seq} ({at}) but the head is gone")
    if head.last_seq < seq:
        return AnchorProblem(
            chain,
            number,
            f"anchored at seq {seq} ({at}) but the head now records seq {head.last_seq}: "
            "the newest events were deleted and the head rewound",
        )
    if seq < head.anchor_seq:
        return None  # purged by retention since; the retained part is walked by audit_verify
    if seq == head.anchor_seq:
        stored = head.anchor_hash
    else:
        row = AuditEvent.objects.filter(team_key=chain, seq=seq).only("hash").first()
        if row is None:
            return AnchorProblem(chain, number, f"anchored event seq {seq} ({at}) is missing")
        stored = row.hash or ""
    if stored != anchored_hash:
        return AnchorProblem(
            chain, number, f"event seq {seq} no longer has its anchored hash ({at}): rewritten"
        )
    return None


def audit_anchors_verify(path: Path) -> AnchorReport:
    """Check the database against an anchor file: each chain's newest signed anchor must still
    be in the chain, with its hash. Raises ``OSError`` if the file cannot be read."""
    count, newest, problems = _read(path)
    for chain, (number, anchor) in sorted(newest.items()):
        problem = _check(chain, number, anchor)
        if problem is not None:
            problems.append(problem)
    return AnchorReport(lines=count, chains=len(newest), problems=problems)
