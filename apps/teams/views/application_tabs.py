"""The application page's tab bar: one row per tab, so later issues add theirs in one place.

Devices, the flow editor and pipelines append an ``ApplicationTab`` here; a tab the reader may not
open is not shown (the view checks again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.urls import reverse

from apps.teams.access import TeamAccess
from apps.teams.models import Application
from apps.teams.views.base import team_context


@dataclass(frozen=True)
class ApplicationTab:
    key: str
    label: str
    url_name: str
    permission: str


APPLICATION_TABS: list[ApplicationTab] = [
    ApplicationTab("overview", "Overview", "teams:application", "application:read"),
    ApplicationTab("snapshots", "Snapshots", "snapshots:snapshots", "flow:read"),
    ApplicationTab("access", "Access", "teams:application_access", "member:read"),
    ApplicationTab("devices", "Devices", "devices:application_devices", "device:read"),
    ApplicationTab("audit", "Audit log", "audit:application_log", "audit:read"),
]


def application_tabs(access: TeamAccess, application: Application) -> list[dict[str, str]]:
    """The tabs this reader may open, with their URLs."""
    kwargs = {"team_slug": access.team.slug, "app_slug": application.slug}
    return [
        {"key": tab.key, "label": tab.label, "url": reverse(tab.url_name, kwargs=kwargs)}
        for tab in APPLICATION_TABS
        if access.allows(tab.permission, application)
    ]


def application_context(
    access: TeamAccess, application: Application, tab: str, **extra: Any
) -> dict[str, Any]:
    """The team layout's context plus the application header and its tab bar."""
    return team_context(
        access,
        "applications",
        application=application,
        application_tab=tab,
        application_tabs=application_tabs(access, application),
        **extra,
    )
