"""Websocket routes: the core team event stream plus each app's ``websocket_urlpatterns``."""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

from django.apps import apps
from django.urls import URLPattern, URLResolver, path

from apps.core.consumers import TeamEventsConsumer


def collect_app_routes() -> list[URLPattern | URLResolver]:
    """Routes from each installed local app's ``routing.py`` (``websocket_urlpatterns``)."""
    routes: list[URLPattern | URLResolver] = []
    for config in apps.get_app_configs():
        if not config.name.startswith("apps."):
            continue
        module_name = f"{config.name}.routing"
        if find_spec(module_name) is None:
            continue
        routes.extend(getattr(import_module(module_name), "websocket_urlpatterns", []))
    return routes


websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path("ws/teams/<slug:team_slug>/events/", TeamEventsConsumer.as_asgi(), name="ws-team-events"),
    *collect_app_routes(),
]
