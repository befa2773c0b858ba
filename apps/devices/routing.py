"""Websocket routes of the devices app.

``websocket_urlpatterns`` are browser sockets (origin-checked, session-authenticated, collected
by ``config.routing``). ``device_websocket_urlpatterns`` is the device link: runners send no
Origin and authenticate with their bearer credential, which a browser cannot attach to a
websocket, so ``config.asgi`` routes it outside the origin validator and the session stack.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from apps.devices.consumers import DeviceLinkConsumer, DeviceLiveConsumer

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "ws/teams/<slug:team_slug>/devices/<int:device_id>/live/",
        DeviceLiveConsumer.as_asgi(),
        name="ws-device-live",
    ),
]

device_websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path("ws/devices/link/", DeviceLinkConsumer.as_asgi(), name="ws-device-link"),
]
