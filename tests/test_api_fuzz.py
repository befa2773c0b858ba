"""RELIABILITY family 6 (bounded): schemathesis-generated requests against every API operation.

The OpenAPI schema is read from the app itself; each operation gets an equal share of
``FUZZ_CASES`` generated cases, sent through the WSGI app as ``olivia_owner`` (a real
personal access token). Path parameters that name a team point at acme half of the time (and an
application at line-1), so cases get past the team lookup into the serializers and services.
Each case runs in a savepoint that is rolled back: every case meets the same world. The check
is ``not_a_server_error``: no generated input may produce a 5xx.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Err, Ok

from apps.accounts.principal import Principal
from apps.accounts.services import token_create
from tests.conftest import Acme, Globex

# Outside `make test-fast`: generated requests (fuzz).
# CI runs 5000 cases per test (~50 s on a quiet 2-core box); the per-test timeout leaves room for
# a loaded one.
pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.timeout(1800)]
FUZZ_CASES = int(os.environ.get("MANIFOLD_FUZZ_CASES", "300"))
REAL_PATH_VALUES = {"team_slug": "acme", "application_slug": "line-1"}


@pytest.fixture
def keep_test_connection() -> Any:
    """The WSGI app would close the connection after each request (as Django's test client
    prevents the same way): that would end the test's transaction and savepoints."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _fuzz(secret: str, real_share: bool) -> tuple[Counter[int], list[str], list[str], int]:
    """Run the cases; (statuses, server errors, 2xx answers on acme's team paths, operations).

    ``real_share``: acme's path values half of the time (the owner), or always (an outsider,
    for whom any 2xx under acme's team path is a leak)."""
    headers = {"Authorization": f"Bearer {secret}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
    results = list(schema.get_all_operations())
    unreadable = [str(result.err()) for result in results if isinstance(result, Err)]
    assert unreadable == [], unreadable
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    per_operation = max(3, FUZZ_CASES // len(operations))
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    acme_answers: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy(), data=st.data())
        @settings(
            max_examples=per_operation,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any, data: st.DataObject) -> None:
            for name, value in REAL_PATH_VALUES.items():
                present = bool(case.path_parameters) and name in case.path_parameters
                if present and (not real_share or data.draw(st.booleans(), label=name)):
                    case.path_parameters[name] = value
            sid = transaction.savepoint()
            try:
                response = case.call(headers=headers)
            finally:
                transaction.savepoint_rollback(sid)
            statuses[response.status_code] += 1
            where = f"{case.method} {case.formatted_path} -> {response.status_code}"
            if response.status_code >= 500:
                failures.append(f"{where}: {case.as_curl_command()}\n{response.text[:300]}")
            team = (case.path_parameters or {}).get("team_slug")
            if team == "acme" and 200 <= response.status_code < 300:
                acme_answers.append(where)

        run()
    return statuses, failures, acme_answers, len(operations)


def test_generated_requests_never_get_a_server_error(
    acme_world: Acme, globex_world: Globex, keep_test_connection: None
) -> None:
    secret = token_create(principal=Principal.for_user(acme_world.olivia), name="fuzz").secret
    statuses, failures, _, operations = _fuzz(secret, real_share=True)
    total = sum(statuses.values())
    print(
        f"\nschemathesis as owner: {total} cases over {operations} operations, "
        f"statuses {dict(sorted(statuses.items()))}, {len(failures)} server errors"
    )
    assert total >= min(FUZZ_CASES, 3 * operations) // 2
    assert statuses[200] > 0, "no case got through: the fuzzing would prove nothing"
    assert failures == [], "\n\n".join(failures[:10])


def test_generated_requests_of_an_outsider_never_reach_acme(
    acme_world: Acme, globex_world: Globex, keep_test_connection: None
) -> None:
    secret = token_create(principal=Principal.for_user(globex_world.oscar), name="fuzz").secret
    statuses, failures, acme_answers, operations = _fuzz(secret, real_share=False)
    total = sum(statuses.values())
    print(
        f"\nschemathesis as outsider: {total} cases over {operations} operations, "
        f"statuses {dict(sorted(statuses.items()))}, {len(failures)} server errors, "
        f"{len(acme_answers)} 2xx under acme"
    )
    assert failures == [], "\n\n".join(failures[:10])
    assert acme_answers == []
