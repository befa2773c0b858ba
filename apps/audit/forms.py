"""The audit log filter form; the same query parameters as the API list and exports."""

from __future__ import annotations

from typing import Any

from django import forms

EVENT_PREFIXES = (
    "team.team",
    "team.member",
    "team.invitation",
    "team.application",
    "team.application_role",
    "team.custom_role",
    "team.audit_settings",
)


class AuditFilterForm(forms.Form):
    """Filters of the audit page. Field names match the API's query parameters, so the export
    links carry the very same filter."""

    event = forms.RegexField(
        label="Event",
        regex=r"^[a-z0-9_.]{1,100}$",
        required=False,
        max_length=100,
        error_messages={"invalid": "Use a dotted event name such as team.member."},
        widget=forms.TextInput(attrs={"list": "audit-event-names", "placeholder": "team.member"}),
    )
    actor = forms.CharField(
        label="Actor",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"list": "audit-actors", "placeholder": "email or name"}),
    )
    application = forms.ChoiceField(label="Application", required=False)
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, applications: list[Any] | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if applications is None:
            # The per-application log is already narrowed to one application.
            del self.fields["application"]
        else:
            self.fields["application"].choices = [("", "All applications")] + [  # type: ignore[attr-defined]  # ChoiceField.choices
                (application.slug, application.name) for application in applications
            ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date must not be before the start date.")
        return cleaned
