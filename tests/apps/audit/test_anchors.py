"""Finding 10: signed chain-head anchors outside the database catch a deleted newest row with
a rewound head, which the chain walk alone cannot tell from an honest shorter trail."""

from __future__ import annotations

import json
import socket
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.audit.anchors import audit_anchor_write, audit_anchors_verify
from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.sealing import audit_seal_pending
from apps.audit.services import audit_record
from apps.teams.models import Team


@pytest.fixture
def anchors(settings: Any, tmp_path: Path) -> Path:
    settings.AUDIT_ANCHOR_FILE = str(tmp_path / "outside" / "anchors.jsonl")
    return Path(settings.AUDIT_ANCHOR_FILE)


def _record(team: Team, actor: User, n: int) -> None:
    for index in range(n):
        with transaction.atomic():
            audit_record(
                event="test.thing.done",
                principal=Principal.for_user(actor),
                team=team,
                after={"index": index},
            )
    # On PostgreSQL the sealer runs after commit, which test transactions never reach.
    audit_seal_pending(wait=True)


def _verify(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("audit_verify", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _cut_newest_and_rewind(team: Team) -> None:
    """What an attacker with the database does: delete the newest row, rewind the head."""
    newest = AuditEvent.objects.filter(team_key=team.pk, seq__isnull=False).order_by("-seq").first()
    assert newest is not None
    assert newest.seq is not None  # sealed rows only (filtered above)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [newest.pk])
    AuditChainHead.objects.filter(chain_key=team.pk).update(
        last_seq=newest.seq - 1, last_hash=newest.prev_hash
    )


def test_rewound_head_passes_the_walk_but_not_the_anchors(
    auditor: User, acme_team: Team, anchors: Path
) -> None:
    _record(acme_team, auditor, 4)
    written = audit_anchor_write()
    assert {anchor["chain"] for anchor in written} >= {acme_team.pk}
    out, _ = _verify("--anchors", str(anchors))
    assert "verified" in out

    _cut_newest_and_rewind(acme_team)
    # The chain walk alone is fooled: what is left is a valid, shorter chain.
    _verify("--team", acme_team.slug)
    with pytest.raises(CommandError, match="anchor mismatch"):
        _verify("--anchors", str(anchors))
    report = audit_anchors_verify(anchors)
    (problem,) = report.problems
    assert problem.chain_key == acme_team.pk
    assert "head now records seq" in problem.reason


def test_rewritten_anchored_row_is_found(auditor: User, acme_team: Team, anchors: Path) -> None:
    _record(acme_team, auditor, 3)
    audit_anchor_write()
    _cut_newest_and_rewind(acme_team)
    # ...then writes a different newest event at the same sequence number.
    _record(acme_team, auditor, 1)
    _verify("--team", acme_team.slug)
    (problem,) = audit_anchors_verify(anchors).problems
    assert "rewritten" in problem.reason


def test_only_moved_heads_are_anchored_again(auditor: User, acme_team: Team, anchors: Path) -> None:
    _record(acme_team, auditor, 2)
    assert audit_anchor_write()
    assert audit_anchor_write() == []
    _record(acme_team, auditor, 1)
    (again,) = [a for a in audit_anchor_write() if a["chain"] == acme_team.pk]
    assert again["seq"] == AuditChainHead.objects.get(chain_key=acme_team.pk).last_seq
    out = StringIO()
    call_command("audit_anchor", "--all", stdout=out)
    assert "anchored in" in out.getvalue()


def test_forged_or_lowered_anchor_lines_are_refused(
    auditor: User, acme_team: Team, anchors: Path
) -> None:
    _record(acme_team, auditor, 3)
    audit_anchor_write()
    lines = anchors.read_text().splitlines()
    forged = json.loads(lines[-1])
    forged["seq"] = 1  # an attacker lowering the checkpoint to match a cut-back trail
    anchors.write_text("\n".join([*lines, json.dumps(forged), "not json"]) + "\n")
    problems = [str(problem) for problem in audit_anchors_verify(anchors).problems]
    assert any("signature does not match" in text for text in problems)
    assert any("not an anchor line" in text for text in problems)


def test_missing_anchor_file_is_a_clear_error(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="Cannot read the anchor file"):
        _verify("--anchors", str(tmp_path / "nope.jsonl"))


def test_anchors_also_go_to_the_syslog_stream(
    auditor: User, acme_team: Team, anchors: Path, settings: Any, udp_listener: socket.socket
) -> None:
    _record(acme_team, auditor, 2)
    settings.AUDIT_SYSLOG_URL = f"udp://127.0.0.1:{udp_listener.getsockname()[1]}"
    written = audit_anchor_write(force=True)
    received = [udp_listener.recv(65535) for _ in written]
    ours = [message for message in received if f'chain="{acme_team.pk}"'.encode() in message]
    assert len(ours) == 1
    assert b" audit.anchor [manifold@32473 " in ours[0]
    body = json.loads(ours[0].split(b"\xef\xbb\xbf", 1)[1])
    assert body == next(anchor for anchor in written if anchor["chain"] == acme_team.pk)
