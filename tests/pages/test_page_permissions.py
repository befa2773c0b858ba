"""Every team page names the permission key it needs, and a key that exists."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver

from apps.rbac.permissions import PERMISSIONS


def _page_patterns() -> list[tuple[str, URLPattern]]:
    found: list[tuple[str, URLPattern]] = []
    for resolver in get_resolver().url_patterns:
        if not isinstance(resolver, URLResolver) or resolver.namespace not in {"teams", "audit"}:
            continue
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLPattern):
                found.append((f"{resolver.namespace}:{pattern.name}", pattern))
    return found


def test_every_team_scoped_page_names_a_known_permission() -> None:
    team_scoped = [
        (name, pattern)
        for name, pattern in _page_patterns()
        if "<slug:team_slug>" in str(pattern.pattern)
    ]
    assert len(team_scoped) >= 20
    for name, pattern in team_scoped:
        permission = getattr(pattern.callback, "permission", None)
        assert permission in PERMISSIONS, f"{name} names no permission ({permission!r})"
    print(f"team pages with a named permission: {len(team_scoped)}")
