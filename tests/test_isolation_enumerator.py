"""Cross-team isolation enumerator: RELIABILITY.md families 1 (routes), 2 (body refs), 31 (audit).

Every URL pattern of the project (pages and API) has an entry in ``SAMPLES``; a new pattern
without one fails ``test_every_route_has_a_sample``. ``oscar_outsider`` (team globex) then calls
each pattern with acme's ids and every HTTP method; the answer must be 403/404 (405 only where
the view has no handler for the method at all) and nothing may change. Every relation field of
every write serializer and form is probed with a globex reference, alone and mixed into a list.
Every mutating endpoint, called successfully by its rightful actor, must append an AuditEvent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.tokens import default_token_generator
from django.db import models, transaction
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.test import APIClient

from apps.accounts.models import PersonalAccessToken, User
from apps.accounts.principal import Principal
from apps.accounts.services import token_create, user_create, user_deactivate
from apps.audit.models import AuditChainHead, AuditEvent
from apps.rbac.models import CustomRole
from apps.rbac.services import custom_role_create
from apps.teams.models import Invitation, Membership, Team
from apps.teams.services import application_override_set, invitation_create
from tests.conftest import PASSWORD, Acme, Globex

METHODS = ("get", "post", "put", "patch", "delete")
MUTATING = ("post", "put", "patch", "delete")
NEW_PASSWORD = "a-Different-passphrase-77"
# Strings that identify acme: none may reach the outsider through an "open" route.
ACME_MARKERS = ("Acme Plant", "olivia@acme.test", "eddie@acme.test", "vera@acme.test")


# --- the world every probe runs against ---------------------------------------------------


@dataclass
class World:
    acme: Acme
    globex: Globex
    newbie: User
    invitation: Invitation
    invitation_secret: str
    role: CustomRole
    globex_role: CustomRole
    eddie_membership: Membership
    vera_membership: Membership
    oscar_membership: Membership
    token: PersonalAccessToken
    event: AuditEvent
    reset_uid: str
    reset_token: str
    paula: User
    dormant: User


def build_world(acme: Acme, globex: Globex) -> World:
    olivia, oscar = acme.olivia, globex.oscar
    newbie = user_create(email="newbie@acme.test", password=PASSWORD)
    created = invitation_create(
        principal=Principal.for_user(olivia), team=acme.team, email=newbie.email, role="viewer"
    )
    role = custom_role_create(
        principal=Principal.for_user(olivia), team=acme.team, name="Ops", permissions=["flow:read"]
    )
    globex_role = custom_role_create(
        principal=Principal.for_user(oscar),
        team=globex.team,
        name="Globex ops",
        permissions=["flow:read"],
    )
    eddie_membership = Membership.objects.get(team=acme.team, user=acme.eddie)
    vera_membership = Membership.objects.get(team=acme.team, user=acme.vera)
    # An override equal to vera's team role: it exists (to be listed and deleted) without
    # changing what any persona may do, so the RBAC matrix reads the plain role table.
    application_override_set(
        principal=Principal.for_user(olivia),
        membership=vera_membership,
        application=acme.line_1,
        role="viewer",
    )
    token = token_create(principal=Principal.for_user(olivia), name="olivia's token").token
    event = AuditEvent.objects.filter(team_key=acme.team.pk).order_by("-id").first()
    assert event is not None
    # The platform admin: a member of no team (tenancy is strict, the flag grants no team data).
    paula = user_create(email="paula@platform.test", password=PASSWORD, is_platform_admin=True)
    dormant = user_create(email="dormant@acme.test", password=PASSWORD)
    user_deactivate(principal=Principal.for_user(paula), user=dormant)
    return World(
        acme=acme,
        globex=globex,
        newbie=newbie,
        invitation=created.invitation,
        invitation_secret=created.secret,
        role=role,
        globex_role=globex_role,
        eddie_membership=eddie_membership,
        vera_membership=vera_membership,
        oscar_membership=Membership.objects.get(team=globex.team, user=oscar),
        token=token,
        event=event,
        reset_uid=urlsafe_base64_encode(force_bytes(olivia.pk)),
        reset_token=default_token_generator.make_token(olivia),
        paula=paula,
        dormant=dormant,
    )


@pytest.fixture
def world(acme_world: Acme, globex_world: Globex) -> World:
    return build_world(acme_world, globex_world)


# --- the sample table ---------------------------------------------------------------------

Body = Callable[[World], dict[str, Any]]


def _none(w: World) -> dict[str, Any]:
    return {}


def _team(w: World) -> dict[str, Any]:
    return {"team_slug": "acme"}


def _app(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "application_slug": "line-1"}


def _page_app(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "app_slug": "line-1"}


def _eddie(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "membership_id": w.eddie_membership.pk}


def _role(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "role_id": w.role.pk}


def _invitation(w: World) -> dict[str, Any]:
    return {"team_slug": "acme", "invitation_id": w.invitation.pk}


def _link(w: World) -> dict[str, Any]:
    return {"token": w.invitation_secret}


def _token(w: World) -> dict[str, Any]:
    return {"token_id": w.token.pk}


def _vera_user(w: World) -> dict[str, Any]:
    return {"user_id": w.acme.vera.pk}


def _dormant_user(w: World) -> dict[str, Any]:
    return {"user_id": w.dormant.pk}


def _reset(w: World) -> dict[str, Any]:
    return {"uidb64": w.reset_uid, "token": w.reset_token}


def _open_reset_link(w: World, client: APIClient) -> dict[str, Any]:
    """Follow the emailed link as its recipient: Django moves the token into the session."""
    # A fresh link: earlier sign-ins changed last_login, which invalidates older links.
    w.acme.olivia.refresh_from_db()
    token = default_token_generator.make_token(w.acme.olivia)
    response = client.get(f"/accounts/password/reset/{w.reset_uid}/{token}/")
    assert response.status_code == 302, response.status_code
    return {"uidb64": w.reset_uid, "token": "set-password"}


@dataclass(frozen=True)
class Sample:
    """How to call one URL pattern.

    ``scope``: "team" (reaches acme's data: the outsider gets 403/404), "user" (another user's
    own object: 403/404), "platform" (platform admins only: everyone else gets 403/404),
    "capability" (the URL itself is the credential, e.g. an invitation link: the outsider may
    read, but no write may succeed), "open" (not tied to a team).
    ``bodies``: the rightful actor's valid body per mutating method (family 31).
    ``prime``: for flows that need a prior step in the same session (a reset link stores its
    token in the session, then the form posts to ``.../set-password/``): called with the world
    and the rightful actor's client before the mutating call, returns the kwargs to call with.
    """

    scope: str
    kwargs: Callable[[World], dict[str, Any]] = _none
    bodies: dict[str, Body] = field(default_factory=dict)
    actor: str = "olivia"
    api: bool = True
    audit_exempt: str = ""
    prime: Callable[[World, APIClient], dict[str, Any]] | None = None


def _body(data: dict[str, Any]) -> Body:
    return lambda w: data


T = "api/v1/teams/<slug:team_slug>/"
PT = "teams/<slug:team_slug>/"
SAMPLES: dict[str, Sample] = {
    # API: the signed-in user
    "api/v1/me/": Sample("open"),
    "api/v1/me/password/": Sample(
        "open",
        bodies={"post": _body({"old_password": PASSWORD, "new_password": NEW_PASSWORD})},
    ),
    "api/v1/tokens/": Sample("open", bodies={"post": _body({"name": "ci"})}),
    "api/v1/tokens/<int:token_id>/": Sample("user", _token, {"delete": _none}),
    "api/v1/permissions/": Sample("open"),
    "api/v1/teams/": Sample("open", bodies={"post": _body({"name": "New", "slug": "new-team"})}),
    # API: one team
    T: Sample("team", _team, {"patch": _body({"name": "Acme Renamed"}), "delete": _none}),
    T + "leave/": Sample("team", _team, {"post": _none}, actor="eddie"),
    T + "applications/": Sample(
        "team", _team, {"post": _body({"name": "Line 2", "slug": "line-2"})}
    ),
    T + "applications/<slug:application_slug>/": Sample(
        "team", _app, {"patch": _body({"name": "Line One"}), "delete": _none}
    ),
    T + "applications/<slug:application_slug>/overrides/": Sample(
        "team",
        _app,
        {"post": lambda w: {"membership": w.vera_membership.pk, "role": "dashboard"}},
    ),
    T + "applications/<slug:application_slug>/overrides/<int:membership_id>/": Sample(
        "team", lambda w: {**_app(w), "membership_id": w.vera_membership.pk}, {"delete": _none}
    ),
    T + "members/": Sample("team", _team),
    T + "members/<int:membership_id>/": Sample(
        "team", _eddie, {"patch": _body({"role": "viewer"}), "delete": _none}
    ),
    T + "invitations/": Sample(
        "team", _team, {"post": _body({"email": "new@acme.test", "role": "viewer"})}
    ),
    T + "invitations/<int:invitation_id>/": Sample("team", _invitation, {"delete": _none}),
    T + "custom-roles/": Sample(
        "team", _team, {"post": _body({"name": "Auditor", "permissions": ["audit:read"]})}
    ),
    T + "custom-roles/<int:role_id>/": Sample(
        "team", _role, {"patch": _body({"name": "Ops 2"}), "delete": _none}
    ),
    T + "flows/validate/": Sample(
        "team", _team, {"post": _body({"flows": []})}, audit_exempt="a dry run: stores nothing"
    ),
    T + "audit-events/": Sample("team", _team),
    T + "audit-events/export.csv": Sample("team", _team),
    T + "audit-events/export.jsonl": Sample("team", _team),
    T + "audit-events/<int:event_id>/": Sample(
        "team", lambda w: {"team_slug": "acme", "event_id": w.event.pk}
    ),
    T + "audit-settings/": Sample(
        "team",
        _team,
        {"put": _body({"audit_retention_days": 30}), "patch": _body({"audit_retention_days": 31})},
    ),
    # API: invitation links
    "api/v1/invitations/<str:token>/": Sample("capability", _link),
    "api/v1/invitations/<str:token>/accept/": Sample(
        "capability", _link, {"post": _none}, actor="newbie"
    ),
    "api/v1/invitations/<str:token>/decline/": Sample(
        "capability", _link, {"post": _none}, actor="newbie"
    ),
    # API: platform admins
    "api/v1/platform/users/": Sample("platform", actor="paula"),
    "api/v1/platform/users/<int:user_id>/": Sample("platform", _vera_user, actor="paula"),
    "api/v1/platform/users/<int:user_id>/deactivate/": Sample(
        "platform", _vera_user, {"post": _none}, actor="paula"
    ),
    "api/v1/platform/users/<int:user_id>/reactivate/": Sample(
        "platform", _dormant_user, {"post": _none}, actor="paula"
    ),
    "api/v1/platform/teams/": Sample("platform", actor="paula"),
    "api/v1/schema/": Sample("open"),
    "api/v1/docs/": Sample("open"),
    "api/v1/redoc/": Sample("open"),
    # pages: accounts
    "healthz": Sample("open", api=False),
    "accounts/login/": Sample(
        "open",
        api=False,
        actor="anonymous",
        bodies={"post": _body({"email": "olivia@acme.test", "password": PASSWORD})},
        audit_exempt="changes only the session",
    ),
    "accounts/logout/": Sample(
        "open", api=False, bodies={"post": _none}, audit_exempt="changes only the session"
    ),
    "accounts/password/change/": Sample(
        "open",
        api=False,
        bodies={
            "post": _body(
                {
                    "old_password": PASSWORD,
                    "new_password1": NEW_PASSWORD,
                    "new_password2": NEW_PASSWORD,
                }
            )
        },
    ),
    "accounts/password/change/done/": Sample("open", api=False),
    "accounts/tokens/": Sample(
        "open",
        api=False,
        bodies={"post": _body({"name": "page token", "all_teams": "on", "expires_in_days": "30"})},
    ),
    "accounts/tokens/<int:token_id>/revoke/": Sample("user", _token, {"post": _none}, api=False),
    "accounts/password/reset/": Sample(
        "open",
        api=False,
        actor="anonymous",
        bodies={"post": _body({"email": "olivia@acme.test"})},
    ),
    "accounts/password/reset/sent/": Sample("open", api=False),
    "accounts/password/reset/<uidb64>/<token>/": Sample(
        "capability",
        _reset,
        {"post": _body({"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})},
        actor="anonymous",
        api=False,
        prime=_open_reset_link,
    ),
    "accounts/password/reset/complete/": Sample("open", api=False),
    # pages: teams
    "": Sample("open", api=False),
    "create-team/": Sample(
        "open", api=False, bodies={"post": _body({"name": "Page Team", "slug": "page-team"})}
    ),
    "invitations/<str:token>/": Sample(
        "capability", _link, {"post": _body({"action": "accept"})}, actor="newbie", api=False
    ),
    "platform/users/": Sample("platform", actor="paula", api=False),
    "platform/users/<int:user_id>/deactivate/": Sample(
        "platform", _vera_user, {"post": _none}, actor="paula", api=False
    ),
    "platform/users/<int:user_id>/reactivate/": Sample(
        "platform", _dormant_user, {"post": _none}, actor="paula", api=False
    ),
    "platform/teams/": Sample("platform", actor="paula", api=False),
    PT: Sample("team", _team, api=False),
    PT + "settings/": Sample(
        "team", _team, {"post": _body({"name": "Acme Two", "slug": "acme"})}, api=False
    ),
    PT + "delete/": Sample("team", _team, {"post": _body({"confirm": "acme"})}, api=False),
    PT + "leave/": Sample("team", _team, {"post": _none}, actor="eddie", api=False),
    PT + "audit/": Sample("team", _team, api=False),
    PT + "applications/": Sample("team", _team, api=False),
    PT + "applications/new/": Sample(
        "team",
        _team,
        {"post": _body({"name": "Line 3", "slug": "line-3", "description": ""})},
        api=False,
    ),
    PT + "applications/<slug:app_slug>/edit/": Sample(
        "team",
        _page_app,
        {"post": _body({"name": "Line Uno", "slug": "line-1", "description": ""})},
        api=False,
    ),
    PT + "applications/<slug:app_slug>/delete/": Sample(
        "team", _page_app, {"post": _none}, api=False
    ),
    PT + "applications/<slug:app_slug>/access/": Sample(
        "team",
        _page_app,
        {"post": lambda w: {"membership": w.vera_membership.pk, "role": "dashboard"}},
        api=False,
    ),
    PT + "applications/<slug:app_slug>/audit/": Sample("team", _page_app, api=False),
    PT + "members/": Sample("team", _team, api=False),
    PT + "members/invite/": Sample(
        "team", _team, {"post": _body({"email": "p@acme.test", "role": "viewer"})}, api=False
    ),
    PT + "members/<int:membership_id>/role/": Sample(
        "team", _eddie, {"post": _body({"role": "viewer", "custom_role": ""})}, api=False
    ),
    PT + "members/<int:membership_id>/remove/": Sample("team", _eddie, {"post": _none}, api=False),
    PT + "invitations/<int:invitation_id>/revoke/": Sample(
        "team", _invitation, {"post": _none}, api=False
    ),
    PT + "roles/": Sample("team", _team, api=False),
    PT + "roles/new/": Sample(
        "team",
        _team,
        {"post": _body({"name": "Auditor", "description": "", "permissions": ["audit:read"]})},
        api=False,
    ),
    PT + "roles/<int:role_id>/edit/": Sample(
        "team",
        _role,
        {"post": _body({"name": "Ops 2", "description": "", "permissions": ["flow:read"]})},
        api=False,
    ),
    PT + "roles/<int:role_id>/delete/": Sample("team", _role, {"post": _none}, api=False),
}


# --- routes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    pattern: str
    name: str
    callback: Callable[..., Any]


def all_routes() -> list[Route]:
    def walk(patterns: list[Any], prefix: str) -> Iterator[Route]:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield Route(prefix + str(entry.pattern), entry.name or "", entry.callback)

    return list(walk(get_resolver().url_patterns, ""))


def view_class(route: Route) -> Any:
    return getattr(route.callback, "cls", None) or getattr(route.callback, "view_class", None)


def handled_methods(route: Route) -> set[str] | None:
    """Methods the view has a handler for; None when it cannot be told (function views)."""
    actions = getattr(route.callback, "actions", None)
    if actions:
        return set(actions)
    cls = view_class(route)
    if cls is not None:
        return {method for method in METHODS if callable(getattr(cls, method, None))}
    return None


_CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def route_url(route: Route, kwargs: dict[str, Any]) -> str:
    return "/" + _CONVERTER.sub(lambda m: str(kwargs[m["name"]]), route.pattern)


def client_as(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def missing_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The same kwargs pointing at nothing: numbers that are no row, slugs that are no team."""
    return {
        name: 987654321 if isinstance(value, int) else "no-such-thing"
        for name, value in kwargs.items()
    }


def missing_status(route: Route, sample: Sample, world: World, method: str) -> int:
    url = route_url(route, missing_kwargs(sample.kwargs(world)))
    response, _, _ = probe(client_as(world.globex.oscar), method, url, {}, sample.api)
    return int(response.status_code)


def persona(world: World, name: str) -> User | None:
    people = {
        "olivia": world.acme.olivia,
        "eddie": world.acme.eddie,
        "vera": world.acme.vera,
        "dana": world.acme.dana,
        "oscar": world.globex.oscar,
        "newbie": world.newbie,
        "paula": world.paula,
    }
    return None if name == "anonymous" else people[name]


def call(client: APIClient, method: str, url: str, body: dict[str, Any], api: bool) -> Any:
    if method == "get":
        return client.get(url, body)
    if api:
        return getattr(client, method)(url, body, format="json")
    return getattr(client, method)(url, body)


# --- snapshots ----------------------------------------------------------------------------


def snapshot_models() -> list[type[models.Model]]:
    return [
        model
        for model in django_apps.get_models()
        if model.__module__.startswith("apps.") or model._meta.app_label == "guardian"
    ]


def _team_filter(model: type[models.Model], team: Team) -> models.Q | None:
    """How ``model``'s rows of ``team`` are found; None: no path (the whole table counts)."""
    if model is Team:
        return models.Q(pk=team.pk)
    if model is AuditEvent:
        return models.Q(team_key=team.pk)
    if model is AuditChainHead:
        return models.Q(chain_key=team.pk)
    if model is User:
        return models.Q(memberships__team=team)
    fks = [f for f in model._meta.concrete_fields if isinstance(f, models.ForeignKey)]
    for fk in fks:
        if fk.related_model is Team:
            return models.Q(**{fk.name: team})
    for fk in fks:
        if fk.related_model is User:
            return models.Q(**{f"{fk.name}__memberships__team": team})
        for inner in fk.related_model._meta.concrete_fields:  # type: ignore[union-attr]  # a ForeignKey always has a related model
            if isinstance(inner, models.ForeignKey) and inner.related_model is Team:
                return models.Q(**{f"{fk.name}__{inner.name}": team})
    return None


def snapshot(team: Team | None = None) -> dict[str, str]:
    """A digest per table: every row (or every row of ``team``), every column."""
    digests = {}
    for model in snapshot_models():
        rows = model._default_manager.all()
        if team is not None:
            condition = _team_filter(model, team)
            if condition is not None:
                rows = rows.filter(condition).distinct()
        values = list(rows.order_by("pk").values_list())
        digests[model._meta.label] = hashlib.sha256(repr(values).encode()).hexdigest()
    return digests


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(label for label in before if before[label] != after.get(label))


def probe(
    client: APIClient,
    method: str,
    url: str,
    body: dict[str, Any],
    api: bool,
    team: Team | None = None,
) -> tuple[Any, dict[str, str], dict[str, str]]:
    """Call once inside a savepoint that is always undone (the world stays the same for the
    next probe); return the response and the snapshots before and after."""
    before = snapshot(team)
    sid = transaction.savepoint()
    try:
        response = call(client, method, url, body, api)
        after = snapshot(team)
    finally:
        transaction.savepoint_rollback(sid)
    return response, before, after


# --- family 1: routes ---------------------------------------------------------------------


def test_every_route_has_a_sample() -> None:
    patterns = [route.pattern for route in all_routes()]
    missing = [pattern for pattern in patterns if pattern not in SAMPLES]
    stale = [pattern for pattern in SAMPLES if pattern not in patterns]
    assert missing == [], f"URL patterns without an enumerator sample: {missing}"
    assert stale == [], f"Samples for URL patterns that no longer exist: {stale}"


def test_outsider_gets_nothing_from_acme(world: World) -> None:
    routes = [route for route in all_routes() if route.pattern in SAMPLES]
    failures: list[str] = []
    probes = 0
    for route in routes:
        sample = SAMPLES[route.pattern]
        url = route_url(route, sample.kwargs(world))
        handled = handled_methods(route)
        for method in METHODS:
            body = sample.bodies[method](world) if method in sample.bodies else {}
            if sample.scope == "capability":
                body = {}  # the outsider holds the link, not the invitee's or owner's intent
            scope_team = None if sample.scope != "open" else world.acme.team
            # A fresh session per probe: an earlier probe may have been a logout.
            oscar = client_as(world.globex.oscar)
            response, before, after = probe(oscar, method, url, body, sample.api, scope_team)
            probes += 1
            status = response.status_code
            where = f"{method.upper()} {url} [{route.pattern}] -> {status}"
            if changed(before, after):
                failures.append(f"{where}: changed {changed(before, after)}")
            if status >= 500:
                failures.append(f"{where}: server error")
            if sample.scope in {"team", "user", "platform"} and status not in {403, 404}:
                # 405 is fine only where it does not depend on the object: the view has no
                # handler for the method, or missing ids get the very same 405.
                method_level = status == 405 and (
                    (handled is not None and method not in handled)
                    or missing_status(route, sample, world, method) == 405
                )
                if not method_level:
                    failures.append(f"{where}: expected 403/404")
            elif sample.scope == "capability" and method in MUTATING and status < 300:
                failures.append(f"{where}: a write through someone else's link succeeded")
            elif sample.scope == "open":
                content = b"" if getattr(response, "streaming", False) else response.content
                leaked = [marker for marker in ACME_MARKERS if marker.encode() in content]
                if leaked:
                    failures.append(f"{where}: leaked {leaked}")
    print(
        f"isolation routes: {len(routes)} patterns x {len(METHODS)} methods = {probes} probes, "
        f"{len(failures)} failures"
    )
    assert failures == [], "\n".join(failures)


# --- family 31: every mutating endpoint writes an audit event ------------------------------


def test_every_mutating_endpoint_writes_an_audit_event(world: World) -> None:
    failures: list[str] = []
    mutating: list[tuple[Route, str]] = []
    undeclared: list[tuple[Route, str]] = []
    for route in all_routes():
        sample = SAMPLES.get(route.pattern)
        if sample is None:
            continue
        handled = handled_methods(route)
        for method in MUTATING:
            if method in sample.bodies:
                mutating.append((route, method))
            elif handled is None or method in handled:
                undeclared.append((route, method))

    audited = exempt = 0
    for route, method in mutating:
        sample = SAMPLES[route.pattern]
        client = client_as(persona(world, sample.actor))
        kwargs = sample.prime(world, client) if sample.prime else sample.kwargs(world)
        url = route_url(route, kwargs)
        last = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        sid = transaction.savepoint()
        try:
            response = call(client, method, url, sample.bodies[method](world), sample.api)
            events = list(AuditEvent.objects.filter(pk__gt=last).values_list("event", flat=True))
        finally:
            transaction.savepoint_rollback(sid)
        where = f"{method.upper()} {url} as {sample.actor} -> {response.status_code}"
        if response.status_code >= 400:
            failures.append(f"{where}: the rightful call failed: {response.content[:300]!r}")
        elif events:
            audited += 1
        elif sample.audit_exempt:
            exempt += 1
        else:
            failures.append(f"{where}: succeeded without an audit event")

    # A method the table does not call mutating must not mutate, even for the owner.
    for route, method in undeclared:
        sample = SAMPLES[route.pattern]
        url = route_url(route, sample.kwargs(world))
        response, before, after = probe(client_as(world.acme.olivia), method, url, {}, sample.api)
        if changed(before, after):
            failures.append(
                f"{method.upper()} {url} -> {response.status_code} changed "
                f"{changed(before, after)} but has no sample body (declare it mutating)"
            )
    counted = len(mutating) - exempt
    print(
        f"audit coverage: {audited}/{counted} mutating endpoints "
        f"({exempt} session-only exempt, {len(undeclared)} other handlers checked read-only)"
    )
    assert failures == [], "\n".join(failures)
    assert audited == counted


# --- family 2: relation fields in request bodies -------------------------------------------


def _subclasses(base: type) -> set[type]:
    found: set[type] = set()
    pending: list[type] = [base]
    while pending:
        sub: type
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found


def _input_fields(cls: type) -> dict[str, Any]:
    from django import forms
    from rest_framework import serializers

    if issubclass(cls, forms.BaseForm):
        return dict(cls.base_fields)  # type: ignore[attr-defined]  # set by the form metaclass
    assert issubclass(cls, serializers.BaseSerializer)
    try:
        fields = dict(cls().fields)  # type: ignore[attr-defined]  # Serializer, ListSerializer
    except Exception:  # serializers that need context: their declared fields suffice
        fields = dict(getattr(cls, "_declared_fields", {}))
    return {name: f for name, f in fields.items() if not f.read_only}


def _is_relation(name: str, input_field: Any, model_names: set[str]) -> bool:
    from django import forms
    from rest_framework import relations

    if isinstance(
        input_field,
        relations.RelatedField | relations.ManyRelatedField | forms.ModelChoiceField,
    ):
        return True
    lowered = name.lower()
    if lowered.endswith(("_id", "_ids")):
        return True
    key = lowered.replace("_", "")
    return bool({key, key.removesuffix("s")} & model_names)


def relation_fields() -> list[tuple[str, str]]:
    """(class name, field) for every relation-like input of every serializer and form of apps."""
    from django import forms
    from rest_framework import serializers

    all_routes()  # importing the URLconf imports every view, serializer and form
    model_names = {
        model._meta.model_name or ""
        for model in django_apps.get_models()
        if model.__module__.startswith("apps.")
    }
    found = []
    for cls in _subclasses(serializers.BaseSerializer) | _subclasses(forms.BaseForm):
        if not cls.__module__.startswith("apps."):
            continue
        for name, input_field in _input_fields(cls).items():
            if _is_relation(name, input_field, model_names):
                found.append((cls.__name__, name))
    return sorted(found)


@dataclass(frozen=True)
class RefProbe:
    """Where a relation field is submitted, and its own-team and foreign-team values.

    ``own`` (the control) must succeed; ``foreign`` (a globex reference) and, for list fields,
    ``mixed`` (own + foreign in one list) must be refused with nothing changed.
    """

    pattern: str
    method: str
    own: Body
    foreign: Body
    mixed: Body | None = None


GLOBEX_MARKERS = ("oscar@globex.test", "Globex")

BODY_REF_PROBES: dict[tuple[str, str], RefProbe] = {
    ("AuditFilterSerializer", "application"): RefProbe(
        T + "audit-events/", "get", _body({"application": "line-1"}), _body({"application": "hq"})
    ),
    ("AuditFilterForm", "application"): RefProbe(
        PT + "audit/", "get", _body({"application": "line-1"}), _body({"application": "hq"})
    ),
    ("MembershipUpdateSerializer", "custom_role"): RefProbe(
        T + "members/<int:membership_id>/",
        "patch",
        lambda w: {"custom_role": w.role.pk},
        lambda w: {"custom_role": w.globex_role.pk},
    ),
    ("MemberRoleForm", "custom_role"): RefProbe(
        PT + "members/<int:membership_id>/role/",
        "post",
        lambda w: {"role": "member", "custom_role": w.role.pk},
        lambda w: {"role": "member", "custom_role": w.globex_role.pk},
    ),
    ("OverrideWriteSerializer", "membership"): RefProbe(
        T + "applications/<slug:application_slug>/overrides/",
        "post",
        lambda w: {"membership": w.vera_membership.pk, "role": "dashboard"},
        lambda w: {"membership": w.oscar_membership.pk, "role": "dashboard"},
    ),
    ("OverrideForm", "membership"): RefProbe(
        PT + "applications/<slug:app_slug>/access/",
        "post",
        lambda w: {"membership": w.vera_membership.pk, "role": "dashboard"},
        lambda w: {"membership": w.oscar_membership.pk, "role": "dashboard"},
    ),
    ("TokenCreateSerializer", "teams"): RefProbe(
        "api/v1/tokens/",
        "post",
        _body({"name": "scoped", "teams": ["acme"]}),
        _body({"name": "scoped", "teams": ["globex"]}),
        _body({"name": "scoped", "teams": ["acme", "globex"]}),
    ),
    ("TokenCreateForm", "teams"): RefProbe(
        "accounts/tokens/",
        "post",
        _body({"name": "scoped", "teams": ["acme"], "expires_in_days": "30"}),
        _body({"name": "scoped", "teams": ["globex"], "expires_in_days": "30"}),
        _body({"name": "scoped", "teams": ["acme", "globex"], "expires_in_days": "30"}),
    ),
}


def test_every_relation_field_has_a_probe() -> None:
    discovered = relation_fields()
    missing = [key for key in discovered if key not in BODY_REF_PROBES]
    stale = [key for key in BODY_REF_PROBES if key not in discovered]
    assert missing == [], f"relation fields without a cross-team probe: {missing}"
    assert stale == [], f"probes for relation fields that no longer exist: {stale}"


def test_foreign_references_in_bodies_are_refused(world: World) -> None:
    routes = {route.pattern: route for route in all_routes()}
    failures: list[str] = []
    probed = 0
    for (cls_name, field_name), ref in BODY_REF_PROBES.items():
        route = routes[ref.pattern]
        sample = SAMPLES[ref.pattern]
        url = route_url(route, sample.kwargs(world))
        label = f"{cls_name}.{field_name} via {ref.method.upper()} {url}"

        control, before, after = probe(
            client_as(world.acme.olivia), ref.method, url, ref.own(world), sample.api
        )
        if control.status_code >= 400 or (ref.method != "get" and not changed(before, after)):
            failures.append(f"{label}: own-team control did not succeed ({control.status_code})")

        variants = [("single", ref.foreign)] + ([("mixed", ref.mixed)] if ref.mixed else [])
        for kind, body in variants:
            client = client_as(world.acme.olivia)
            response, before, after = probe(client, ref.method, url, body(world), sample.api)
            probed += 1
            status = response.status_code
            accepted = 200 <= status < 400 if sample.api else 300 <= status < 400
            if changed(before, after):
                failures.append(f"{label} [{kind}] -> {status}: changed {changed(before, after)}")
            if ref.method != "get" and accepted:
                failures.append(f"{label} [{kind}] -> {status}: foreign reference accepted")
            if ref.method == "get":
                content = b"" if getattr(response, "streaming", False) else response.content
                if status < 400 and any(m.encode() in content for m in GLOBEX_MARKERS):
                    failures.append(f"{label} [{kind}] -> {status}: shows globex data")
    fields = len(relation_fields())
    print(
        f"body refs: {len(BODY_REF_PROBES)}/{fields} relation fields probed, {probed} foreign "
        f"submissions, {len(failures)} accepted or changed"
    )
    assert failures == [], "\n".join(failures)
