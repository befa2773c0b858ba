"""Form plumbing shared by the pages: service errors become inline form errors."""

from __future__ import annotations

from collections.abc import Mapping

from django import forms

from apps.core.errors import ManifoldError, ValidationError


def add_service_error(
    form: forms.Form, exc: ManifoldError, field_map: Mapping[str, str] | None = None
) -> None:
    """Show a service's refusal on the form: per-field messages next to their fields.

    ``field_map`` renames service field names to form field names. Messages for fields the form
    does not have, and errors without fields, go to the top of the form.
    """
    mapping = dict(field_map or {})
    placed = False
    if isinstance(exc, ValidationError):
        for name, messages in exc.fields.items():
            target = mapping.get(name, name)
            for message in messages:
                if target in form.fields:
                    form.add_error(target, message)
                    placed = True
                else:
                    form.add_error(None, message)
                    placed = True
    if not placed:
        form.add_error(None, exc.message)
