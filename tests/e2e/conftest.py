"""The end-to-end fixtures: the real platform served on loopback and real agent processes."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from tests.e2e.test_device_lifecycle import HEARTBEAT, Agent, Platform


@pytest.fixture
def platform(transactional_db: Any) -> Iterator[Platform]:
    served = Platform()
    with override_settings(DEVICE_HEARTBEAT_SECONDS=HEARTBEAT):
        served.start()
        try:
            yield served
        finally:
            served.stop()


@pytest.fixture
def agents() -> Iterator[Callable[[], Agent]]:
    made: list[Agent] = []
    with tempfile.TemporaryDirectory(prefix="e2e-") as scratch:

        def make() -> Agent:
            agent = Agent(Path(scratch) / f"runner-{len(made)}")
            made.append(agent)
            return agent

        try:
            yield make
        finally:
            for agent in made:
                agent.stop()
