"""The door of the runner's port: who may use the Admin API and ``/comms``.

One check, run as aiohttp middleware before any admin handler (and before the ``/comms``
websocket upgrade), in this order; the first violation answers with a JSON ``{code, message}``
and the handler never runs, so nothing is deployed or injected:

1. ``Host`` must be a loopback name or address (``localhost``, 127.0.0.0/8, ``[::1]``; any port)
   or one of the configured hosts -> else 421 ``host_not_allowed`` (DNS rebinding).
2. A present ``Origin`` must be the runner's own (``http://`` + the request's ``Host``)
   -> else 403 ``origin_not_allowed`` (a web page on another origin).
3. ``OPTIONS`` (a CORS preflight) -> 403 ``cors_refused``; no CORS header is ever sent, so a
   browser never sends a cross-origin write.
4. With a token configured: ``Authorization: Bearer <token>`` (compared in constant time)
   -> else 401 ``unauthorized`` with ``WWW-Authenticate: Bearer``.
5. Writes (POST, PUT, PATCH, DELETE) must be ``Content-Type: application/json`` -> else 415
   ``unsupported_media_type`` (a form or ``text/plain`` post needs no preflight; JSON does).

Routes of ``http in`` nodes on the same port are user routes, not guarded here (Node-RED serves
them without ``adminAuth`` too). Admin handlers that still fail answer JSON as well: a 4xx that
aiohttp raises (body over the limit) keeps its status, anything else is a 500 JSON.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("edge_runner.admin_guard")

TOKEN_ENV = "MANIFOLD_RUNNER_ADMIN_TOKEN"  # noqa: S105  (a variable name, not a secret)
ALLOWED_HOSTS_ENV = "MANIFOLD_RUNNER_ALLOWED_HOSTS"
MIN_TOKEN_LENGTH = 16
# Paths the Admin API owns (compared like the http in router: case-insensitive, one trailing
# slash ignored), whatever the method, so an http in route can never shadow them unguarded.
ADMIN_PATHS = frozenset({"/flows", "/flows/state", "/comms"})
ADMIN_PREFIXES = ("/inject/",)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPE = "application/json"

Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


class AdminGuardError(ValueError):
    """The guard cannot be configured as asked (one-line reason, for the command line)."""


def is_admin_path(path: str) -> bool:
    normal = path.lower()
    if len(normal) > 1 and normal.endswith("/"):
        normal = normal[:-1]
    return normal in ADMIN_PATHS or normal.startswith(ADMIN_PREFIXES)


def split_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` header -> (lower-case host without brackets, port or None); None if malformed."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    elif ":" in value:
        return None  # a bare IPv6 address must be bracketed in a Host header
    else:
        host, port_text = value, ""
    host = host.rstrip(".")
    if not host or any(c in host for c in "/@ \t\\"):
        return None
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); brackets allowed."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normal_host(value: str) -> str:
    value = value.strip()
    if value.count(":") > 1 and not value.startswith("["):
        value = f"[{value}]"  # a bare IPv6 address
    parsed = split_host(value)
    if parsed is None or parsed[1] is not None:
        raise AdminGuardError(
            f"allowed host {value!r} must be a host name or address without port or scheme"
        )
    return parsed[0]


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The admin token kept in ``path`` (surrounding whitespace ignored). Refuses an unreadable,
    empty, short or world-readable file with a one-line reason."""
    target = Path(path)
    try:
        mode = target.stat().st_mode
        text = target.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AdminGuardError(f"admin token file {target} is unreadable: {reason}") from exc
    if mode & stat.S_IROTH:
        raise AdminGuardError(
            f"admin token file {target} is readable by every user; chmod o-r {target}"
        )
    return check_token(text.strip(), f"admin token file {target}")


def check_token(token: str, source: str) -> str:
    if not token:
        raise AdminGuardError(f"{source} is empty")
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise AdminGuardError(
            f"{source} must hold one token of at least {MIN_TOKEN_LENGTH} characters "
            "without spaces (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def token_from(file: str | None, environ: dict[str, str] | os._Environ[str]) -> str | None:
    """The configured token: ``--admin-token-file`` first, then $MANIFOLD_RUNNER_ADMIN_TOKEN."""
    if file:
        return read_token_file(file)
    value = environ.get(TOKEN_ENV, "").strip()
    return check_token(value, f"${TOKEN_ENV}") if value else None


def hosts_from(given: Iterable[str], environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """``--allowed-host`` values plus the comma-separated $MANIFOLD_RUNNER_ALLOWED_HOSTS."""
    from_env = [h for h in environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()]
    return [*given, *from_env]


class RefusalLog:
    """A warning per refusal, at most one a minute (a hostile page can knock in a loop)."""

    EVERY_S = 60.0

    def __init__(self) -> None:
        self.logged_at = -self.EVERY_S
        self.suppressed = 0

    def report(self, request: web.Request, refused: web.Response) -> None:
        now = time.monotonic()
        if now - self.logged_at < self.EVERY_S:
            self.suppressed += 1
            return
        suppressed, self.suppressed, self.logged_at = self.suppressed, 0, now
        log.warning(
            "refused %s %s from %s with %s (Host %r, Origin %r)%s",
            request.method,
            request.path,
            request.remote,
            refused.status,
            request.headers.get("Host"),
            request.headers.get("Origin"),
            f"; {suppressed} more refused since the last report" if suppressed else "",
        )


@dataclass(frozen=True)
class AdminGuard:
    """The access rules of one server's Admin API and ``/comms``."""

    token: str | None = field(repr=False)  # never in a log line or traceback
    allowed_hosts: frozenset[str]
    refusals: RefusalLog = field(default_factory=RefusalLog, compare=False, repr=False)

    @classmethod
    def build(
        cls, bind_host: str, token: str | None, allowed_hosts: Iterable[str] = ()
    ) -> AdminGuard:
        """Refuses to serve a non-loopback address without a token. A specific bind address is
        an allowed ``Host`` itself (clients reach the runner by it)."""
        if token is not None:
            check_token(token, "the admin token")
        hosts = {_normal_host(h) for h in allowed_hosts}
        if not is_loopback(bind_host):
            if token is None:
                raise AdminGuardError(
                    f"--host {bind_host} is not a loopback address: set an admin token "
                    f"(--admin-token-file or ${TOKEN_ENV}) or listen on 127.0.0.1"
                )
            if bind_host not in ("", "0.0.0.0", "::"):  # noqa: S104  (compared, not bound)
                hosts.add(_normal_host(bind_host))
        return cls(token, frozenset(hosts))

    def refusal(self, request: web.Request) -> web.Response | None:
        """The 4xx answer for a request that may not reach the Admin API, else None."""
        host_header = request.headers.get("Host", "")
        parsed = split_host(host_header)
        if parsed is None:
            return error(400, "bad_host", "the request needs a valid Host header")
        host, port = parsed
        if not (is_loopback(host) or host in self.allowed_hosts):
            return error(
                421,
                "host_not_allowed",
                f"Host {host_header!r} is not a loopback name or an allowed host (--allowed-host)",
            )
        origin = request.headers.get("Origin")
        if origin is not None and not _same_origin(origin, request.scheme, host, port):
            return error(
                403, "origin_not_allowed", f"Origin {origin!r} is not this runner's own origin"
            )
        if request.method == "OPTIONS":
            return error(403, "cors_refused", "cross-origin requests to the Admin API are refused")
        if not self._authorized(request):
            response = error(
                401, "unauthorized", "this runner needs Authorization: Bearer <admin token>"
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="edge-runner"'
            return response
        if request.method in WRITE_METHODS:
            media = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
            if media != JSON_TYPE:
                return error(
                    415,
                    "unsupported_media_type",
                    f"{request.method} to the Admin API needs Content-Type: {JSON_TYPE}",
                )
        return None

    def _authorized(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self.token.encode())

    def middleware(self) -> Any:
        """aiohttp middleware applying :meth:`refusal` to admin paths (``/comms`` included)."""
        from aiohttp import web

        @web.middleware
        async def admin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not is_admin_path(request.path):
                return await handler(request)
            refused = self.refusal(request)
            if refused is not None:
                self.refusals.report(request, refused)
                return refused
            try:
                return await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                code = exc.reason.lower().replace(" ", "_").replace("-", "_")
                return error(exc.status, code, exc.text or exc.reason)
            except Exception:
                log.exception("%s %s failed", request.method, request.path)
                return error(500, "internal_error", "the runner failed to handle the request")

        return admin_guard


def _same_origin(origin: str, scheme: str, host: str, port: int | None) -> bool:
    try:
        parts = urlsplit(origin.strip())
        origin_port = parts.port
    except ValueError:
        return False
    if parts.scheme.lower() != scheme or parts.hostname is None or parts.path or parts.query:
        return False
    default = 443 if scheme == "https" else 80
    return parts.hostname.rstrip(".") == host and (origin_port or default) == (port or default)


def error(status: int, code: str, message: str) -> web.Response:
    """A JSON ``{code, message}`` answer."""
    from aiohttp import web

    return web.json_response({"code": code, "message": message}, status=status)
