"""Request bodies as JSON, for the Admin API and ``http in`` alike: strict and depth-bounded, so
a hostile body is a ``ValueError`` (answered 400), never a ``RecursionError`` (a bare 500)."""

from __future__ import annotations

import json
from typing import Any

# Flows and messages are shallow (a node's config rarely nests past 10); the bound keeps every
# recursive step after parsing (copies, serialising, env substitution) far from the recursion
# limit.
MAX_JSON_DEPTH = 100


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes | str) -> Any:
    """Strict JSON (no NaN/Infinity literals, which would not survive a round trip), nested at
    most ``MAX_JSON_DEPTH`` deep; ValueError otherwise."""
    try:
        doc = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    # Level by level: json.loads makes only exact dicts and lists, and a list comprehension
    # per container keeps this walk to about a third of the parse time.
    level: list[Any] = [doc] if doc.__class__ is dict or doc.__class__ is list else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        below: list[Any] = []
        for value in level:
            below += [
                child
                for child in (value.values() if value.__class__ is dict else value)
                if child.__class__ is dict or child.__class__ is list
            ]
        level = below
    return doc
