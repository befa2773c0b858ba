"""``POST /api/v1/teams/<team>/flows/validate/``: the platform rejects what a runner would
reject, through ``edge_runner.validate``; validation stores nothing."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from apps.audit.models import AuditEvent

URL = "/api/v1/teams/acme/flows/validate/"
TAB = {"id": "t1", "type": "tab", "label": "line 1"}


def node(node_id: str, node_type: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "z": "t1", "wires": [], **fields}


GOOD = [
    TAB,
    node("inj", "inject", repeat="5", wires=[["fn"]]),
    node("fn", "python-function", func="return msg", wires=[["dbg"]]),
    node("dbg", "debug"),
]
BAD = [
    TAB,
    node("fn", "python-function", outputs=100, func="return msg +"),
    node("ghost", "no-such-node"),
    node("cron", "inject", crontab="every blue moon", wires=[["nowhere"]]),
]


def test_eddie_editor_gets_valid_for_flows_a_runner_accepts(eddie_api: APIClient) -> None:
    events = AuditEvent.objects.count()
    response = eddie_api.post(URL, {"flows": GOOD}, format="json")
    assert response.status_code == 200
    assert response.json() == {"valid": True, "problems": []}
    assert AuditEvent.objects.count() == events


def test_invalid_flows_list_every_problem_per_node(eddie_api: APIClient) -> None:
    response = eddie_api.post(URL, {"flows": BAD}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    problems = body["problems"]
    assert {p["node_id"] for p in problems} == {"fn", "ghost", "cron"}
    assert {p["node_id"] for p in problems if p["severity"] == "error"} == {"fn", "cron"}
    assert {"node_id": "fn", "type": "python-function", "field": "outputs"}.items() <= next(
        p for p in problems if p["field"] == "outputs"
    ).items()
    # a type no runner has (a contrib node): runners accept the flows and wait for it
    (ghost,) = (p for p in problems if p["node_id"] == "ghost")
    assert ghost["severity"] == "warning"
    assert "waiting for missing types" in ghost["message"]


def test_flows_with_contrib_types_or_unknown_fields_stay_valid(eddie_api: APIClient) -> None:
    flows = [*GOOD, node("bacnet", "node-red-contrib-bacnet"), node("j", "json", oldField=1)]
    body = eddie_api.post(URL, {"flows": flows}, format="json").json()
    assert body["valid"] is True
    assert [(p["node_id"], p["field"], p["severity"]) for p in body["problems"]] == [
        ("bacnet", None, "warning"),
        ("j", "oldField", "warning"),
    ]


def test_a_disabled_bad_node_is_a_warning_and_the_flows_stay_valid(eddie_api: APIClient) -> None:
    flows = [*GOOD, node("off", "python-function", d=True, func="return msg +")]
    body = eddie_api.post(URL, {"flows": flows}, format="json").json()
    assert body["valid"] is True
    assert [(p["node_id"], p["severity"]) for p in body["problems"]] == [("off", "warning")]


def test_a_body_without_a_flows_array_is_400(eddie_api: APIClient) -> None:
    for body in ({}, {"flows": {"id": "x"}}, {"flows": "[]"}, [GOOD]):
        response = eddie_api.post(URL, body, format="json")
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "invalid"
    response = eddie_api.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_vera_viewer_may_not_validate(vera_api: APIClient) -> None:
    events = AuditEvent.objects.count()
    response = vera_api.post(URL, {"flows": GOOD}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert AuditEvent.objects.count() == events


def test_oscar_outsider_gets_404_for_acme(oscar_api: APIClient) -> None:
    response = oscar_api.post(URL, {"flows": GOOD}, format="json")
    assert response.status_code == 404
    assert oscar_api.post(
        "/api/v1/teams/globex/flows/validate/", {"flows": GOOD}, format="json"
    ).json() == {"valid": True, "problems": []}
