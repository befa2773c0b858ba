"""ASGI entry point: HTTP goes to Django, websockets through origin + session auth to routes.

The device link (``/ws/devices/``) is the exception: runners send no Origin and authenticate
with a bearer credential (apps/devices/routing.py), so it has its own router.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
# Django must be set up before anything imports models (consumers, auth middleware).
django_asgi_app = get_asgi_application()

from typing import Any  # noqa: E402

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from apps.devices.routing import device_websocket_urlpatterns  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

DEVICE_PREFIX = "/ws/devices/"
browser_sockets = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
device_sockets = URLRouter(device_websocket_urlpatterns)


async def websockets(scope: dict[str, Any], receive: Any, send: Any) -> None:
    router = device_sockets if scope["path"].startswith(DEVICE_PREFIX) else browser_sockets
    await router(scope, receive, send)


application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websockets})
