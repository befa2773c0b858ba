"""Cross-team isolation enumerator: RELIABILITY.md families 1 (routes), 2 (body refs), 31 (audit).

Every URL pattern of the project (pages and API) has a row in ``tests/routes.py`` (``ROUTES``);
a new pattern without one fails ``test_every_route_has_a_row``. ``oscar_outsider`` (team globex)
then calls each pattern with acme's ids and every HTTP method; the answer must be 403/404 (405
only where the view has no handler for the method at all) and nothing may change. Every relation
field of every write serializer and form is probed with a globex reference, alone and mixed into
a list. Every mutating endpoint, called successfully by its rightful actor, must append an
AuditEvent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.db import transaction

from apps.audit.models import AuditEvent
from tests.conftest import Acme, Globex
from tests.routes import (
    METHODS,
    MUTATING,
    ROUTES,
    Body,
    Route,
    World,
    _body,
    all_routes,
    build_world,
    call,
    changed,
    client_as,
    handled_methods,
    missing_status,
    persona,
    probe,
    route_url,
    sample_of,
    unlisted_message,
)

# Outside `make test-fast`: every route x every method.
pytestmark = pytest.mark.slow

# Strings that identify acme: none may reach the outsider through an "open" route.
ACME_MARKERS = ("Acme Plant", "olivia@acme.test", "eddie@acme.test", "vera@acme.test")


@pytest.fixture
def world(acme_world: Acme, globex_world: Globex) -> World:
    return build_world(acme_world, globex_world)


# --- family 1: routes ---------------------------------------------------------------------


def test_every_route_has_a_row() -> None:
    routes = all_routes()
    missing = [route for route in routes if route.name not in ROUTES]
    stale = sorted(set(ROUTES) - {route.name for route in routes})
    assert missing == [], unlisted_message(missing)
    assert stale == [], (
        f"rows in tests/routes.py ROUTES for URL names that no longer exist: {stale}"
    )


def test_outsider_gets_nothing_from_acme(world: World) -> None:
    routes = [route for route in all_routes() if route.name in ROUTES]
    failures: list[str] = []
    probes = 0
    for route in routes:
        sample = sample_of(route)
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
        sample = ROUTES.get(route.name)
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
        sample = sample_of(route)
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
        sample = sample_of(route)
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

    route: str  # URL name
    method: str
    own: Body
    foreign: Body
    mixed: Body | None = None


GLOBEX_MARKERS = ("oscar@globex.test", "Globex")

BODY_REF_PROBES: dict[tuple[str, str], RefProbe] = {
    ("AuditFilterSerializer", "application"): RefProbe(
        "api-audit-event-list",
        "get",
        _body({"application": "line-1"}),
        _body({"application": "hq"}),
    ),
    ("AuditFilterForm", "application"): RefProbe(
        "team_log", "get", _body({"application": "line-1"}), _body({"application": "hq"})
    ),
    ("MembershipUpdateSerializer", "custom_role"): RefProbe(
        "api-member-detail",
        "patch",
        lambda w: {"custom_role": w.role.pk},
        lambda w: {"custom_role": w.globex_role.pk},
    ),
    ("MemberRoleForm", "custom_role"): RefProbe(
        "member_role",
        "post",
        lambda w: {"role": "member", "custom_role": w.role.pk},
        lambda w: {"role": "member", "custom_role": w.globex_role.pk},
    ),
    ("OverrideWriteSerializer", "membership"): RefProbe(
        "api-override-list",
        "post",
        lambda w: {"membership": w.vera_membership.pk, "role": "dashboard"},
        lambda w: {"membership": w.oscar_membership.pk, "role": "dashboard"},
    ),
    ("OverrideForm", "membership"): RefProbe(
        "application_access",
        "post",
        lambda w: {"membership": w.vera_membership.pk, "role": "dashboard"},
        lambda w: {"membership": w.oscar_membership.pk, "role": "dashboard"},
    ),
    ("DeviceFilterSerializer", "application"): RefProbe(
        "api-device-list", "get", _body({"application": "line-1"}), _body({"application": "hq"})
    ),
    ("DeviceUpdateSerializer", "application"): RefProbe(
        "api-device-detail",
        "patch",
        _body({"name": "Moved", "application": "line-1"}),
        _body({"name": "Moved", "application": "hq"}),
    ),
    ("DeviceBulkSerializer", "application"): RefProbe(
        "api-device-bulk",
        "post",
        lambda w: {"action": "move", "ids": [w.fleet.paused.pk], "application": "line-1"},
        lambda w: {"action": "move", "ids": [w.fleet.paused.pk], "application": "hq"},
    ),
    ("RegistrationCodeCreateSerializer", "application"): RefProbe(
        "api-device-registration-code",
        "post",
        _body({"name": "Oven", "application": "line-1"}),
        _body({"name": "Oven", "application": "hq"}),
    ),
    ("ProvisioningTokenCreateSerializer", "application"): RefProbe(
        "api-provisioning-token-list",
        "post",
        _body({"name": "Line token", "application": "line-1"}),
        _body({"name": "Line token", "application": "hq"}),
    ),
    ("FleetFilterForm", "application"): RefProbe(
        "fleet", "get", _body({"application": "line-1"}), _body({"application": "hq"})
    ),
    ("BulkForm", "application"): RefProbe(
        "fleet",
        "post",
        lambda w: {"action": "move", "devices": [w.fleet.paused.pk], "application": "line-1"},
        lambda w: {"action": "move", "devices": [w.fleet.paused.pk], "application": "hq"},
    ),
    ("BulkForm", "devices"): RefProbe(
        "fleet",
        "post",
        lambda w: {"action": "add_tag", "tag": "probe", "devices": [w.fleet.device.pk]},
        lambda w: {"action": "add_tag", "tag": "probe", "devices": [w.fleet.globex_device.pk]},
        lambda w: {
            "action": "add_tag",
            "tag": "probe",
            "devices": [w.fleet.device.pk, w.fleet.globex_device.pk],
        },
    ),
    ("GroupDevicesForm", "devices"): RefProbe(
        "device_group_add_devices",
        "post",
        lambda w: {"devices": [w.fleet.device.pk]},
        lambda w: {"devices": [w.fleet.globex_device.pk]},
        lambda w: {"devices": [w.fleet.device.pk, w.fleet.globex_device.pk]},
    ),
    ("ProvisioningTokenForm", "application"): RefProbe(
        "device_add",
        "post",
        _body({"name": "Page token", "application": "line-1"}),
        _body({"name": "Page token", "application": "hq"}),
    ),
    ("DeployForm", "snapshot"): RefProbe(
        "device_deploy",
        "post",
        lambda w: {"snapshot": w.snapshot.pk},
        lambda w: {"snapshot": w.globex_snapshot.pk},
    ),
    ("SnapshotChoiceSerializer", "snapshot"): RefProbe(
        "api-application-deploy",
        "post",
        lambda w: {"snapshot": w.snapshot.pk},
        lambda w: {"snapshot": w.globex_snapshot.pk},
    ),
    ("ProvisioningTokenCreateSerializer", "snapshot"): RefProbe(
        "api-provisioning-token-list",
        "post",
        lambda w: {"name": "With target", "application": "line-1", "snapshot": w.snapshot.pk},
        lambda w: {
            "name": "With target",
            "application": "line-1",
            "snapshot": w.globex_snapshot.pk,
        },
    ),
    ("TokenCreateSerializer", "teams"): RefProbe(
        "api-token-list",
        "post",
        _body({"name": "scoped", "teams": ["acme"]}),
        _body({"name": "scoped", "teams": ["globex"]}),
        _body({"name": "scoped", "teams": ["acme", "globex"]}),
    ),
    ("SnapshotWriteSerializer", "parent_id"): RefProbe(
        "api-snapshot-list",
        "post",
        lambda w: {"name": "v2", "flows": [], "parent_id": w.snapshot.pk},
        lambda w: {"name": "v2", "flows": [], "parent_id": w.globex_snapshot.pk},
    ),
    ("TokenCreateForm", "teams"): RefProbe(
        "tokens",
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
    routes = {route.name: route for route in all_routes()}
    failures: list[str] = []
    probed = 0
    for (cls_name, field_name), ref in BODY_REF_PROBES.items():
        route = routes[ref.route]
        sample = sample_of(route)
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
