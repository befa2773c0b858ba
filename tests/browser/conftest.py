"""Real-browser tests: headless Chromium (Debian's) against the real ASGI app under uvicorn.

Run them on their own: ``pytest -m browser tests/browser`` (Playwright's sync API runs an event
loop in the main thread, which clashes with asyncio tests in the same session).

The server is uvicorn serving ``config.asgi.application`` (HTTP *and* the team websocket) in a
thread of the test process, so the page, the websocket consumer and the test share one database.
SQLite test databases are in memory by default and cannot be shared across threads that way, so
they move to a file here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.asgi_server import serve_asgi

# Playwright's sync API keeps an event loop running in the main thread; the ORM calls the tests
# make there are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Desktop and phone: the widths every page is looked at (``@BOTH_WIDTHS`` on a test taking
# ``device``, ``width`` and ``height``).
BOTH_WIDTHS = pytest.mark.parametrize(
    ("device", "width", "height"), [("desktop", 1440, 900), ("phone", 390, 844)]
)
SHOTS = Path(os.environ.get("MANIFOLD_SHOTS_DIR", "/tmp/shots"))
# axe-core from npm (package.json), like every browser library here: no CDN.
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    from django.conf import settings

    database = settings.DATABASES["default"]
    # The server's worker threads must not keep connections open after each request: the test
    # database is flushed (and finally dropped) while they idle, and PostgreSQL refuses to drop a
    # database with open sessions.
    database["CONN_MAX_AGE"] = 0
    if database["ENGINE"] == "django.db.backends.sqlite3":
        path = Path(settings.VAR_DIR) / "test" / f"browser-{os.getpid()}.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        database.setdefault("TEST", {})["NAME"] = str(path)


@pytest.fixture
def server(transactional_db: Any) -> Iterator[str]:
    """The whole platform (pages, static files, websockets) at a loopback URL."""
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from config.asgi import application

    with serve_asgi(ASGIStaticFilesHandler(application)) as base:
        yield base


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium: Any) -> Iterator[Callable[..., Any]]:
    """``new_page(width=1280, height=800)``: a page in a fresh context (its own cookies).

    Console errors and failed requests fail the test: a broken script or a missing static file
    is a bug even if the page still looks right.
    """
    contexts: list[Any] = []
    problems: list[str] = []

    def make(width: int = 1280, height: int = 800) -> Any:
        context = chromium.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                problems.append(f"console {message.type}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not problems, problems


def page_tolerating_400(chromium: Any, width: int, height: int) -> tuple[Any, Any, list[str]]:
    """(context, page, problems): a page in a fresh context whose console errors and page
    errors land in ``problems``, except the one Chromium logs for a 400 answer (a form refused
    with its errors inline). The caller closes the context and asserts ``problems == []``."""
    context = chromium.new_context(viewport={"width": width, "height": height})
    problems: list[str] = []
    page = context.new_page()
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "status of 400" not in message.text
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    return context, page, problems


def log_in(page: Any, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under /tmp/shots/ (to look at, not to compare)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page: Any) -> list[str]:
    """axe-core's WCAG 2.1 A/AA findings on the page as it is now, one line per node.

    Evaluated through the DevTools protocol rather than a script tag, so the page's CSP (no
    inline script) does not stop the checker.
    """
    page.evaluate(AXE.read_text())
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
            resultTypes: ['violations'],
        })).violations.map(v => ({id: v.id, nodes: v.nodes.map(n => n.target.join(' '))}))"""
    )
    return [f"{item['id']}: {node}" for item in found for node in item["nodes"]]


def page_is_clean(page: Any, name: str) -> None:
    """One page heading, axe-core clean, no sideways scroll; then a screenshot ``name``."""
    assert page.locator("h1").count() == 1, page.url
    assert axe_violations(page) == [], page.url
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{page.url} scrolls sideways by {overflow}px"
    shot(page, name)
