"""Audit exports stream in constant memory: the tracemalloc peak while reading the whole CSV or
JSON Lines body must not grow with the number of rows (500 vs 5000 rows: < 1.5x).

The body is consumed chunk by chunk and thrown away, as a client writing it to disk would. Each
size is measured 3 times after ``gc.collect()`` and the lowest peak counts: when the cyclic
collector happens to run moves a single peak by ~0.4 MiB, while anything that holds rows would
raise every one of the 3.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.audit.services import audit_record
from apps.teams.models import Team

# Outside `make test-fast`: exports thousands of rows to measure memory.
pytestmark = [pytest.mark.django_db, pytest.mark.slow]
SMALL, LARGE = 500, 5000


def _add_events(team: Team, actor: User, count: int) -> None:
    with transaction.atomic():
        for number in range(count):
            audit_record(
                event="team.application.updated",
                principal=Principal.for_user(actor),
                team=team,
                target=team,
                before={"name": f"Line {number}", "description": "x" * 80},
                after={"name": f"Line {number + 1}", "description": "y" * 80},
            )


def _export_peak(client: APIClient, url: str) -> tuple[int, int, int]:
    """(lowest peak of 3 exports, body bytes, lines)."""
    runs = [_one_export(client, url) for _ in range(3)]
    return min(run[0] for run in runs), runs[0][1], runs[0][2]


def _one_export(client: APIClient, url: str) -> tuple[int, int, int]:
    """(peak bytes allocated while streaming, body bytes, lines) for one full export."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        response: Any = client.get(url)  # a streaming response: the stubs type it as plain
        assert response.status_code == 200
        assert response.streaming
        size = lines = 0
        for chunk in response.streaming_content:
            size += len(chunk)
            lines += chunk.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base, size, lines


@pytest.mark.parametrize("export", ["export.csv", "export.jsonl"])
def test_export_memory_does_not_grow_with_rows(auditor: User, acme_team: Team, export: str) -> None:
    client = APIClient()
    client.force_login(auditor)
    url = f"/api/v1/teams/{acme_team.slug}/audit-events/{export}"
    existing = 2  # team creation's own events

    started = time.monotonic()
    _add_events(acme_team, auditor, SMALL - existing)
    _one_export(client, url)  # warm-up: imports, templates, first-query caches
    small_peak, small_size, small_lines = _export_peak(client, url)
    _add_events(acme_team, auditor, LARGE - SMALL)
    large_peak, large_size, large_lines = _export_peak(client, url)
    took = time.monotonic() - started

    header = 1 if export.endswith(".csv") else 0
    assert small_lines == SMALL + header
    assert large_lines == LARGE + header
    ratio = large_peak / small_peak
    print(
        f"\n{export}: peak {small_peak / 1024:.0f} KiB for {SMALL} rows "
        f"({small_size / 1024:.0f} KiB body), {large_peak / 1024:.0f} KiB for {LARGE} rows "
        f"({large_size / 1024:.0f} KiB body): x{ratio:.2f} ({took:.1f} s with setup)"
    )
    assert ratio < 1.5
    # And far below the body itself: nothing holds the whole export.
    assert large_peak < large_size / 2
