"""The "New snapshot" form: a flows.json upload or pasted JSON, a name and a description."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from apps.snapshots.services import MAX_FLOWS_BYTES


class SnapshotForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, help_text="e.g. “v3 line speed”.")
    description = forms.CharField(
        label="Description",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    flows_file = forms.FileField(
        label="flows.json file",
        required=False,
        help_text="A Node-RED export (Menu → Export → Download), at most 5 MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}),
    )
    flows_text = forms.CharField(
        label="…or paste the flows JSON",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        upload = cleaned.get("flows_file")
        text = (cleaned.get("flows_text") or "").strip()
        if upload and text:
            raise forms.ValidationError("Upload a file or paste JSON, not both.")
        if upload:
            if upload.size > MAX_FLOWS_BYTES:
                self.add_error("flows_file", "The file is larger than 5 MB.")
                return cleaned
            raw: bytes | str = upload.read()
            field = "flows_file"
        elif text:
            raw, field = text, "flows_text"
        else:
            raise forms.ValidationError("Upload a flows.json file or paste the flows JSON.")
        try:
            cleaned["flows"] = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            self.add_error(field, f"This is not valid JSON: {exc}.")
        return cleaned


class ModelUploadForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200, help_text="e.g. “motor-3 anomaly v2”.")
    file = forms.FileField(
        label="ONNX model file",
        help_text="An .onnx file; devices receive it with every snapshot whose flows use it.",
        widget=forms.ClearableFileInput(attrs={"accept": ".onnx,application/octet-stream"}),
    )
