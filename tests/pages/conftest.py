"""Page tests use Django's test client signed in as the shared personas (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import User


@pytest.fixture
def page_client(db: Any) -> Callable[[User | None], Client]:
    """``page_client(user)``: a client with a session for ``user`` (None: anonymous)."""

    def make(user: User | None) -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return make
