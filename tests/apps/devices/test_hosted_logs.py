"""The development instance's logs: the API (``…/instance/logs/?lines=N``, bounded N) and the
application card's log panel read the output of a real process the local driver started."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from apps.devices.hosting import InstanceSpec, LocalProcessDriver
from apps.devices.models import HostedInstance
from tests.apps.devices.test_pages import client_for
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db

URL = "/api/v1/teams/acme/applications/line-1/instance/"
PANEL = "/teams/acme/applications/line-1/instance/logs/"
# A runner stand-in that prints 1500 numbered lines, then waits to be stopped.
CHATTY = [
    sys.executable,
    "-c",
    "import sys, time\n"
    "for n in range(1500):\n"
    "    print(f'line {n} <b>' + 'x' * (n % 7))\n"
    "sys.stdout.flush()\n"
    "time.sleep(60)\n",
]


@pytest.fixture
def hosted_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "hosted"
    with override_settings(HOSTED_ROOT=root, HOSTED_PORTS="31820-31829"):
        yield root


def run_instance(root: Path, instance: HostedInstance) -> LocalProcessDriver:
    """Start the instance's process through the real driver (already registered) and wait
    until its output is all in the log."""
    driver = LocalProcessDriver(root, CHATTY, grace_seconds=1)
    identity = driver.data_dir(str(instance.device_id)) / "device" / "identity.json"
    identity.parent.mkdir(parents=True, exist_ok=True)
    identity.write_text(json.dumps({"device_id": instance.device_id}))
    driver.start(
        InstanceSpec(
            instance_id=str(instance.device_id),
            name=instance.device.name,
            platform_url="http://127.0.0.1:9",
            port=instance.port,
            status_port=instance.status_port,
            registration_code=lambda: "unused",
        )
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if driver.logs(str(instance.device_id), 1) == ["line 1499 <b>" + "x" * (1499 % 7)]:
            return driver
        time.sleep(0.05)
    driver.stop(str(instance.device_id))
    raise AssertionError("the process did not write its output")


def test_logs_api_answers_the_newest_lines_bounded(
    acme_world: Acme, olivia_api: APIClient, vera_api: APIClient, hosted_root: Path
) -> None:
    assert olivia_api.get(URL + "logs/").status_code == 404  # no instance yet
    assert olivia_api.post(URL, {}, format="json").status_code == 201
    instance = HostedInstance.objects.get()
    before = olivia_api.get(URL + "logs/")
    assert before.status_code == 200
    assert before.json()["lines"] == []  # never started: nothing written yet

    driver = run_instance(hosted_root, instance)
    try:
        five = vera_api.get(URL + "logs/", {"lines": 5})
        assert five.status_code == 200
        assert [line.split(" <b>")[0] for line in five.json()["lines"]] == [
            f"line {n}" for n in range(1495, 1500)
        ]
        default = olivia_api.get(URL + "logs/").json()["lines"]
        assert len(default) == 100
        assert default[-1].startswith("line 1499 ")
        assert len(olivia_api.get(URL + "logs/", {"lines": 1000}).json()["lines"]) == 1000
        for bad in ("0", "1001", "-3", "ten", "1e3", "9999999999"):
            refused = olivia_api.get(URL + "logs/", {"lines": bad})
            assert refused.status_code == 400, bad
            error = refused.json()["error"]
            assert "lines" in error["fields"]
            assert "1 to 1000" in error["message"]
    finally:
        driver.stop(str(instance.device_id))


def test_logs_are_refused_to_other_teams_and_token_scopes(
    acme_world: Acme, olivia_api: APIClient, oscar_api: APIClient, hosted_root: Path
) -> None:
    assert olivia_api.post(URL, {}, format="json").status_code == 201
    assert oscar_api.get(URL + "logs/").status_code == 404
    assert (
        oscar_api.get("/api/v1/teams/globex/applications/line-1/instance/logs/").status_code == 404
    )
    assert APIClient().get(URL + "logs/").status_code == 401


def test_application_card_polls_the_log_panel(
    acme_world: Acme, olivia_api: APIClient, hosted_root: Path
) -> None:
    vera = client_for(acme_world.vera)
    overview = vera.get("/teams/acme/applications/line-1/").content.decode()
    assert PANEL not in overview  # no instance: no log panel
    assert olivia_api.post(URL, {}, format="json").status_code == 201
    overview = vera.get("/teams/acme/applications/line-1/").content.decode()
    assert f'hx-get="{PANEL}"' in overview
    assert 'hx-trigger="load, every 3s"' in overview

    empty = vera.get(PANEL)
    assert empty.status_code == 200
    assert empty["Cache-Control"] == "no-store"
    assert "No output yet" in empty.content.decode()

    instance = HostedInstance.objects.get()
    driver = run_instance(hosted_root, instance)
    try:
        panel = vera.get(PANEL).content.decode()
    finally:
        driver.stop(str(instance.device_id))
    assert '<pre class="log-tail"' in panel
    assert "line 1499 &lt;b&gt;" in panel  # escaped, newest last
    assert "line 1299 " not in panel  # only the newest 200
    assert "line 1300 " in panel
    assert panel.index("line 1300 ") < panel.index("line 1499 ")


def test_log_panel_is_404_for_another_team(
    acme_world: Acme, globex_world: Globex, olivia_api: APIClient, hosted_root: Path
) -> None:
    assert olivia_api.post(URL, {}, format="json").status_code == 201
    oscar = client_for(globex_world.oscar)
    assert oscar.get(PANEL).status_code == 404
    assert oscar.get("/teams/globex/applications/line-1/instance/logs/").status_code == 404
