"""The operator's first session against two web processes (called by .ci/production-smoke).

Logs in through the login page on process A, creates a team and a token through the API, opens
the team's event socket on process B, creates an application on A and waits for its event on B.
Then keeps that socket idle for ``--idle`` seconds while ``bench/http_load.py`` loads both
processes (on a second team, so the idle socket hears nothing), and finally proves the idle socket
still receives. Requests carry ``X-Forwarded-Proto: https`` as the TLS proxy would. Exits 1 on
the first failed expectation, with its reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    """Cookies by hand: production cookies are Secure, and the proxy's HTTPS is only a header."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.opener = urllib.request.build_opener(NoRedirect)

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> tuple[int, bytes]:
        host = self.base.split("://", 1)[1]
        headers = {"X-Forwarded-Proto": "https", "Origin": f"https://{host}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        if content_type:
            headers["Content-Type"] = content_type
        # Only the http:// base URLs given on the command line are ever opened.
        request = urllib.request.Request(self.base + path, body, headers, method=method)  # noqa: S310
        try:
            with self.opener.open(request, timeout=30) as response:
                status, data, reply_headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, data, reply_headers = error.code, error.read(), error.headers
        for line in reply_headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(line).items():
                self.cookies[name] = morsel.value
        return status, data

    def api(self, method: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        status, data = self.request(method, path, json.dumps(payload).encode(), "application/json")
        expect(200 <= status < 300, f"{method} {path} answered {status}: {data[:300]!r}")
        answer: dict[str, Any] = json.loads(data)
        return answer


def expect(condition: bool, reason: str) -> None:
    if not condition:
        print(f"SMOKE FAILED: {reason}", flush=True)
        sys.exit(1)


def log_in(browser: Browser, email: str, password: str) -> None:
    status, _ = browser.request("GET", "/accounts/login/")
    expect(status == 200, f"login page answered {status}")
    form = urllib.parse.urlencode(
        {"email": email, "password": password, "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
    ).encode()
    status, _ = browser.request(
        "POST", "/accounts/login/", form, "application/x-www-form-urlencoded"
    )
    expect(status == 302 and "sessionid" in browser.cookies, f"login answered {status}")
    status, _ = browser.request("GET", "/")
    expect(status in (200, 302), f"first page after login answered {status}")


async def open_socket(base: str, slug: str, cookies: dict[str, str]) -> ClientConnection:
    host = base.split("://", 1)[1]
    return await connect(
        f"ws://{host}/ws/teams/{slug}/events/",
        additional_headers={
            "Origin": f"https://{host}",
            "Cookie": f"sessionid={cookies['sessionid']}",
            "X-Forwarded-Proto": "https",
        },
        # A browser sends no pings: the socket must live on the server's pings alone.
        ping_interval=None,
    )


async def event_after(browser: Browser, socket: ClientConnection, team: str, slug: str) -> float:
    started = time.monotonic()
    browser.api("POST", f"/api/v1/teams/{team}/applications/", {"name": slug, "slug": slug})
    while True:
        event = json.loads(await asyncio.wait_for(socket.recv(), 15))
        if event.get("kind") == "team.application.created":
            return time.monotonic() - started


async def main(args: argparse.Namespace) -> None:
    a, b = Browser(args.a), Browser(args.b)
    log_in(a, args.email, args.password)
    b.cookies = dict(a.cookies)
    for slug in ("smoke", "load"):
        a.api("POST", "/api/v1/teams/", {"name": slug.title(), "slug": slug})
    token = a.api("POST", "/api/v1/tokens/", {"name": "load test"})["token"]
    status, data = b.request("GET", "/teams/smoke/")
    expect(status == 200, f"the team page on B answered {status}: {data[:300]!r}")
    print("logged in on A; teams and a token created through the API; pages render", flush=True)

    socket = await open_socket(args.b, "smoke", b.cookies)
    took = await event_after(a, socket, "smoke", "line-1")
    print(f"application created on A -> event on B in {took * 1000:.0f} ms", flush=True)

    idle_started = time.monotonic()
    load = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "http_load.py"),
        "--url",
        args.a,
        "--url",
        args.b,
        "--token",
        token,
        "--team",
        "load",
        "--clients",
        str(args.clients),
        "--seconds",
        str(args.load_seconds),
        "--database-url",
        args.database_url,
        stdout=subprocess.PIPE,
    )
    output, _ = await load.communicate()
    print(output.decode().splitlines()[0], flush=True)
    result = json.loads(output.decode().splitlines()[-1])
    expect(load.returncode == 0 and result["errors"] == 0, f"load test errors: {result}")
    expect(result["requests"] > 0, "the load test sent no request")

    remaining = args.idle - (time.monotonic() - idle_started)
    await asyncio.sleep(max(0.0, remaining))
    idle = time.monotonic() - idle_started
    took = await event_after(a, socket, "smoke", "line-2")
    print(f"socket idle {idle:.0f} s on B, then the event arrived in {took * 1000:.0f} ms")
    await socket.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="base URL of web process A")
    parser.add_argument("--b", required=True, help="base URL of web process B")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--idle", type=float, default=120)
    parser.add_argument("--load-seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
