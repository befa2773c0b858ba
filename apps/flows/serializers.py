"""API shapes of flow validation."""

from __future__ import annotations

from rest_framework import serializers

from apps.flows.validation import MAX_NODES


class FlowsValidateSerializer(serializers.Serializer):  # type: ignore[type-arg]  # DRF serializers are not generic at runtime
    flows = serializers.ListField(
        child=serializers.JSONField(),
        allow_empty=True,
        max_length=MAX_NODES,
        help_text="A Node-RED flows.json array (tabs, subflows, groups, config and flow nodes).",
    )


class ProblemSerializer(serializers.Serializer):  # type: ignore[type-arg]  # DRF serializers are not generic at runtime
    """One problem (response only)."""

    node_id = serializers.CharField(allow_null=True, read_only=True)
    type = serializers.CharField(allow_null=True, read_only=True)
    field = serializers.CharField(
        allow_null=True, read_only=True, help_text="Dotted configuration field path, when known."
    )
    message = serializers.CharField(read_only=True)
    severity = serializers.ChoiceField(choices=["error", "warning"], read_only=True)


class FlowsValidationSerializer(serializers.Serializer):  # type: ignore[type-arg]  # DRF serializers are not generic at runtime
    """The answer (response only)."""

    valid = serializers.BooleanField(read_only=True, help_text="No problem of severity error.")
    problems = ProblemSerializer(many=True, read_only=True)
