"""The dashboard's getting-started checklist: each step ticks itself off from real state.

One ``Step`` per stage of the way from nothing to a running flow. A step whose feature does not
exist yet has ``done=None`` and says when it comes; the issue that ships devices, the editor or
pipelines gives its step a ``done`` hook (and a ``url_name``) here, and the step becomes live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.urls import reverse

from apps.teams.access import TeamAccess
from apps.teams.models import Application

DoneHook = Callable[[TeamAccess, Sequence[Application]], bool]


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    help: str
    done: DoneHook | None
    url_name: str = ""
    permission: str = ""
    later: str = ""


def application_created(_access: TeamAccess, applications: Sequence[Application]) -> bool:
    return len(applications) > 0


STEPS: list[Step] = [
    Step(
        "application",
        "Create an application",
        "One per use case, e.g. “Compressor anomaly detection”.",
        done=application_created,
        url_name="teams:application_create",
        permission="application:create",
    ),
    Step(
        "device",
        "Connect a device",
        "Register an edge runner so it can receive flows.",
        done=None,
        later="Coming with devices",
    ),
    Step(
        "flow",
        "Build a flow",
        "Wire Modbus, OPC UA, MQTT and model nodes in the editor.",
        done=None,
        later="Coming with the flow editor",
    ),
    Step(
        "deploy",
        "Deploy",
        "Publish a snapshot and roll it out to your devices.",
        done=None,
        later="Coming with pipelines",
    ),
]


def getting_started(access: TeamAccess, applications: Sequence[Application]) -> dict[str, Any]:
    """The checklist for this team and reader: each step done, to do, or not available yet."""
    steps = []
    for step in STEPS:
        if step.done is None:
            state, url = "later", ""
        elif step.done(access, applications):
            state, url = "done", ""
        else:
            state = "todo"
            allowed = step.url_name and (not step.permission or access.allows(step.permission))
            url = reverse(step.url_name, kwargs={"team_slug": access.team.slug}) if allowed else ""
        steps.append(
            {
                "title": step.title,
                "help": step.help,
                "state": state,
                "url": url,
                "later": step.later,
            }
        )
    done = sum(1 for step in steps if step["state"] == "done")
    return {"steps": steps, "done": done, "total": len(steps), "complete": done == len(steps)}
