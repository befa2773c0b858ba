"""Parsing ids from URLs and bodies without letting odd input reach the database."""

from __future__ import annotations

MAX_ID = 2**63 - 1


def parse_id(value: object) -> int | None:
    """A positive 64-bit integer id, or None for anything else (text, zero, too large)."""
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if 0 < number <= MAX_ID else None
