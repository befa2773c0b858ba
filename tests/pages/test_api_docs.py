"""The API docs page works on an air-gapped network: every asset it loads is served by us."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from tests.conftest import Acme

pytestmark = pytest.mark.django_db


def test_swagger_ui_loads_only_from_this_server(acme_world: Acme) -> None:
    client = Client()
    client.force_login(acme_world.olivia)
    page = client.get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    assert not [url for url in assets if "//" in url], "no CDN: every asset is ours"
    assert not re.search(r"<script>(?!\s*</script>)", html), "no inline script (CSP)"
    for url in assets:
        if url.startswith("/static/"):
            found = finders.find(url.removeprefix("/static/").split("?")[0])
            assert found, f"{url} is not among our static files"
        else:
            response = client.get(url.replace("&amp;", "&"))
            assert response.status_code == 200, url
            assert response.content, url
