"""Finding 9: a strict Content-Security-Policy on every response, and templates that live
under it (no inline script, style or event handler)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import Acme

TEMPLATES = Path(settings.BASE_DIR) / "templates"
# Inline code the policy refuses: a <script> without src, a <style> block, a style="" or
# on*="" attribute, a javascript: URL.
INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=|javascript:", re.IGNORECASE
)


def _directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


@pytest.mark.parametrize(
    "url", ["/accounts/login/", "/teams/acme/", "/teams/acme/audit/", "/api/v1/teams/", "/nope/"]
)
def test_every_response_carries_the_strict_policy(acme_world: Acme, url: str) -> None:
    client = Client()
    client.force_login(acme_world.olivia)
    response = client.get(url)
    policy = _directives(response["Content-Security-Policy"])
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in response["Content-Security-Policy"]


def test_no_template_has_inline_script_style_or_handlers() -> None:
    offenders = [
        f"{path.relative_to(TEMPLATES)}: {match.group(0)!r}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for match in INLINE.finditer(path.read_text())
    ]
    assert offenders == []


def test_redoc_page_has_no_inline_code(acme_world: Acme) -> None:
    client = Client()
    client.force_login(acme_world.olivia)
    page = client.get("/api/v1/redoc/").content.decode()
    assert INLINE.search(page) is None
    assert "<redoc spec-url=" in page


def test_api_docs_load_their_script_from_a_url(acme_world: Acme) -> None:
    client = Client()
    client.force_login(acme_world.olivia)
    page = client.get("/api/v1/docs/").content.decode()
    assert INLINE.search(page) is None
    script = re.search(r'<script src="([^"]*\?script=[^"]*)"', page)
    assert script is not None, page
    assert client.get(script.group(1).replace("&amp;", "&")).status_code == 200
