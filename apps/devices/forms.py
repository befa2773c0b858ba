"""Forms of the fleet pages. They only parse what a person typed; the services judge it."""

from __future__ import annotations

import json
import re
from typing import Any, cast

from django import forms
from django.http import QueryDict

from apps.devices.models import DeviceStatus

ENV_LINE = re.compile(r"^([^=\s]+)\s*=(.*)$")


def split_tags(text: str) -> list[str]:
    """ "line-3, PRD" -> ["line-3", "PRD"] (order kept, duplicates dropped)."""
    tags: list[str] = []
    for part in text.replace("\n", ",").split(","):
        tag = part.strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def parse_env(text: str) -> tuple[dict[str, str], list[str]]:
    """KEY=value lines -> ({KEY: value}, [errors naming the line])."""
    env: dict[str, str] = {}
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = ENV_LINE.match(line)
        if match is None:
            errors.append(f"Line {number}: write NAME=value (got {line[:40]!r}).")
            continue
        name, value = match.group(1), match.group(2).strip()
        if name in env:
            errors.append(f"Line {number}: {name} is set twice.")
            continue
        env[name] = value
    return env, errors


def set_choices(form: forms.Form, name: str, choices: list[tuple[Any, str]]) -> None:
    cast(forms.ChoiceField, form.fields[name]).choices = choices


class FleetFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search")
    status = forms.ChoiceField(required=False, label="Status")
    tag = forms.CharField(required=False, max_length=50, label="Tag")
    application = forms.ChoiceField(required=False, label="Application")
    group = forms.ChoiceField(required=False, label="Group")

    def __init__(self, *args: Any, applications: Any = (), groups: Any = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        statuses = [(value, label) for value, label in DeviceStatus.choices]
        set_choices(self, "status", [("", "Any status"), *statuses])
        apps = [(app.slug, app.name) for app in applications]
        set_choices(self, "application", [("", "Any application"), *apps])
        set_choices(self, "group", [("", "Any group")] + [(str(g.pk), g.name) for g in groups])
        for name in ("q", "tag"):
            self.fields[name].widget.attrs["placeholder"] = (
                "Name or hostname" if name == "q" else "e.g. line-3"
            )


BULK_ACTIONS = [
    ("move", "Move to application"),
    ("add_tag", "Add tag"),
    ("remove_tag", "Remove tag"),
    ("suspend", "Suspend"),
    ("resume", "Resume"),
    ("delete", "Delete"),
]
DESTRUCTIVE = {"delete"}


class BulkForm(forms.Form):
    action = forms.ChoiceField(choices=BULK_ACTIONS)
    devices = forms.TypedMultipleChoiceField(coerce=int, choices=())
    application = forms.ChoiceField(required=False)
    tag = forms.CharField(required=False, max_length=50)
    confirmed = forms.BooleanField(required=False)

    def __init__(self, *args: Any, devices: Any = (), applications: Any = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        set_choices(self, "devices", [(device.pk, device.name) for device in devices])
        self.fields["devices"].error_messages["required"] = "Select at least one device."
        self.fields["devices"].error_messages["invalid_choice"] = (
            "A selected device is no longer in the list; reload the page."
        )
        apps = [(app.slug, app.name) for app in applications]
        set_choices(self, "application", [("", "No application"), *apps])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        action = data.get("action")
        if action in ("add_tag", "remove_tag") and not data.get("tag"):
            self.add_error("tag", "Enter the tag.")
        return data


class ProvisioningTokenForm(forms.Form):
    name = forms.CharField(max_length=100, initial="New devices")
    application = forms.ChoiceField(
        required=False, help_text="Devices registering with this token join it."
    )
    group = forms.ChoiceField(
        required=False, label="Device group", help_text="…and this group (its env vars apply)."
    )
    max_uses = forms.IntegerField(
        required=False, min_value=1, help_text="Leave empty for no limit."
    )
    expires_in_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=365,
        initial=7,
        label="Expires in (days)",
        help_text="Leave empty for a token that never expires.",
    )

    def __init__(self, *args: Any, applications: Any = (), groups: Any = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        apps = [(app.slug, app.name) for app in applications]
        set_choices(self, "application", [("", "No application"), *apps])
        set_choices(self, "group", [("", "No group")] + [(str(g.pk), g.name) for g in groups])


class DeviceSettingsForm(forms.Form):
    name = forms.CharField(max_length=100)
    tags = forms.CharField(required=False, help_text="Separate tags with commas.")
    env = forms.CharField(
        required=False,
        label="Environment variables",
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "mono"}),
        help_text=(
            "One NAME=value per line. The device runs its snapshot's env, overlaid with its "
            "groups', overlaid with these (these win). Saving a change sends the device its "
            "target again with the new env; a device in developer mode gets it when it leaves."
        ),
    )

    def clean_tags(self) -> list[str]:
        return split_tags(self.cleaned_data.get("tags") or "")

    def clean_env(self) -> dict[str, str]:
        env, errors = parse_env(self.cleaned_data.get("env") or "")
        if errors:
            raise forms.ValidationError(errors)
        return env


class DecommissionForm(forms.Form):
    confirm = forms.CharField(max_length=100, label="Type the device's name to confirm")

    def __init__(self, *args: Any, device_name: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.device_name = device_name

    def clean_confirm(self) -> str:
        value = str(self.cleaned_data.get("confirm", "")).strip()
        if value != self.device_name:
            raise forms.ValidationError("That is not the device's name.")
        return value


class StateAtForm(forms.Form):
    when = forms.DateTimeField(
        label="What ran at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )


class DeployForm(forms.Form):
    snapshot = forms.TypedChoiceField(coerce=int, label="Snapshot")

    def __init__(self, *args: Any, snapshots: Any = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        set_choices(self, "snapshot", [(snapshot.pk, snapshot.name) for snapshot in snapshots])
        self.fields["snapshot"].error_messages["invalid_choice"] = (
            "Choose a snapshot of this device's application."
        )


class DeviceGroupForm(forms.Form):
    """A group's name and description, and its env vars as rows of ``env_name``/``env_value``
    inputs (a row left empty is dropped; the service judges the names and values)."""

    name = forms.CharField(max_length=100)
    description = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    env = forms.Field(required=False)  # filled from the rows; carries their errors

    def __init__(self, *args: Any, env: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.is_bound:
            data = cast(QueryDict, self.data)
            names = data.getlist("env_name")
            values = data.getlist("env_value")
            values += [""] * (len(names) - len(values))
            self.env_rows = [(str(n).strip(), str(v)) for n, v in zip(names, values, strict=False)]
        else:
            self.env_rows = sorted((env or {}).items())

    def clean_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        errors: list[str] = []
        for number, (name, value) in enumerate(self.env_rows, start=1):
            if not name and not value:
                continue
            if not name:
                errors.append(f"Row {number}: enter a name for the value {value[:40]!r}.")
            elif name in env:
                errors.append(f"Row {number}: {name} is set twice.")
            else:
                env[name] = value
        if errors:
            raise forms.ValidationError(errors)
        return env


class GroupDevicesForm(forms.Form):
    devices = forms.TypedMultipleChoiceField(coerce=int, choices=())

    def __init__(self, *args: Any, devices: Any = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        set_choices(self, "devices", [(device.pk, device.name) for device in devices])
        self.fields["devices"].error_messages["required"] = "Choose at least one device."
        self.fields["devices"].error_messages["invalid_choice"] = (
            "A chosen device is no longer available; reload the page."
        )


class RegistrationCodeForm(forms.Form):
    code_name = forms.CharField(max_length=100, label="Device name")
    code_application = forms.ChoiceField(required=False, label="Application")
    code_groups = forms.TypedMultipleChoiceField(
        coerce=int,
        required=False,
        label="Groups",
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, applications: Any = (), groups: Any = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        apps = [(app.slug, app.name) for app in applications]
        set_choices(self, "code_application", [("", "No application"), *apps])
        set_choices(self, "code_groups", [(group.pk, group.name) for group in groups])


class DeveloperFlowsForm(forms.Form):
    """The developer-mode editor: the device's flows as JSON text (a Node-RED export)."""

    flows_text = forms.CharField(
        label="Flows (JSON)",
        help_text="A flows.json array. Deploying replaces the device's flows at once; the "
        "platform's validator checks them first. A node's credentials (a broker's password: "
        '"credentials": {"password": "..."}) go sealed to the device; a node sent without '
        "them keeps the device's, and __PWRD__ keeps one stored value. They are never shown "
        "again.",
        max_length=5 * 1024 * 1024,
        widget=forms.Textarea(
            attrs={"rows": 16, "spellcheck": "false", "class": "mono", "autocomplete": "off"}
        ),
    )

    def clean_flows_text(self) -> Any:
        text = self.cleaned_data["flows_text"]
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from None


class DeveloperLeaveForm(forms.Form):
    """Leave developer mode: ``action`` is the button pressed (keep or revert)."""

    action = forms.ChoiceField(choices=[("keep", "Keep"), ("revert", "Revert")])
    name = forms.CharField(
        label="Snapshot name",
        required=False,
        max_length=100,
        help_text="Optional; the device's name and the time otherwise.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["keep"] = data.get("action") == "keep"
        return data
