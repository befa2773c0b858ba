"""Where an action came from (IP, user agent, request id), kept beside the principal.

Services never take the request: ``AuditContextMiddleware`` sets the context for each HTTP
request in a ``ContextVar`` (one per request under ASGI and WSGI alike), and code outside a
request (Celery tasks, management commands) sets its own with ``with audit_context(...)``.
``audit_record`` reads ``current_audit_context()`` unless the caller passes one.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.ipv6 import clean_ipv6_address

REQUEST_ID_HEADER = "X-Request-ID"
# A request id from a proxy is kept only if it is short and plain; anything else is replaced,
# so a client cannot smuggle text into the audit trail through the header.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
USER_AGENT_MAX = 512


def clean_ip(raw: object) -> str | None:
    """A valid IP in the form the database stores it (so the hashed form is the read-back form),
    or None."""
    text = str(raw or "")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return clean_ipv6_address(text) if address.version == 6 else str(address)


@dataclass(frozen=True)
class AuditContext:
    """The origin of an action as stored on audit rows."""

    ip: str | None = None
    user_agent: str = ""
    request_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ip", clean_ip(self.ip))
        object.__setattr__(self, "user_agent", str(self.user_agent or "")[:USER_AGENT_MAX])
        request_id = str(self.request_id or "")
        object.__setattr__(self, "request_id", request_id if _REQUEST_ID.match(request_id) else "")


NO_CONTEXT = AuditContext()
_current: ContextVar[AuditContext] = ContextVar("manifold_audit_context", default=NO_CONTEXT)


def new_request_id() -> str:
    return uuid.uuid4().hex


def context_from_request(request: HttpRequest) -> AuditContext:
    """REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy rewrites it,
    and the deployment's proxy is expected to set REMOTE_ADDR (uvicorn --proxy-headers)."""
    incoming = str(request.headers.get(REQUEST_ID_HEADER, ""))
    return AuditContext(
        ip=request.META.get("REMOTE_ADDR"),
        user_agent=str(request.META.get("HTTP_USER_AGENT", "")),
        request_id=incoming if _REQUEST_ID.match(incoming) else new_request_id(),
    )


def current_audit_context() -> AuditContext:
    """The context of the running request or ``with audit_context`` block (empty outside)."""
    return _current.get()


@contextmanager
def audit_context(context: AuditContext | None = None, **fields: Any) -> Iterator[AuditContext]:
    """Set the audit context for a block: a task, a command, a test.

    ``audit_context(request_id=task.request.id)`` or ``audit_context(AuditContext(...))``.
    """
    value = context if context is not None else AuditContext(**fields)
    token = _current.set(value)
    try:
        yield value
    finally:
        _current.reset(token)


class AuditContextMiddleware:
    """Sets the audit context of each request and echoes its request id in the response."""

    sync_capable = True
    async_capable = True

    def __init__(
        self, get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]
    ) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        context = context_from_request(request)
        with audit_context(context):
            # A sync chain returns the response itself, never an awaitable.
            response = cast(HttpResponseBase, self.get_response(request))
        return self._stamp(response, context)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        context = context_from_request(request)
        with audit_context(context):
            response = await cast(Awaitable[HttpResponseBase], self.get_response(request))
        return self._stamp(response, context)

    @staticmethod
    def _stamp(response: HttpResponseBase, context: AuditContext) -> HttpResponseBase:
        response.headers[REQUEST_ID_HEADER] = context.request_id
        return response
