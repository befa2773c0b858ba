"""Canonical hashing of audit events: pure functions, no database."""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept as is.

    Values reach this function already normalised by ``normalise_json`` so the form hashed at
    write time is the form read back from any database backend.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def normalise_json(value: Any) -> Any:
    """Round-trip a value through JSON so dates, decimals, UUIDs become plain JSON types."""
    from django.core.serializers.json import DjangoJSONEncoder

    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def event_hash(fields: dict[str, Any], prev_hash: str) -> str:
    """sha256 over the canonical JSON of the event's fields followed by the previous hash."""
    payload = canonical_json(fields) + "\n" + prev_hash
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
