"""Node-RED's context-store syntax for context keys: ``#:(store)::key`` names the store a flow
or global value lives in, as the editor's typed inputs write it."""

from __future__ import annotations

import re

STORE_PREFIX = "#:("
_STORE_KEY = re.compile(r"#:\((\S+?)\)::(.*)")


def parse_context_store(key: str) -> tuple[str | None, str]:
    """``RED.util.parseContextStore``: ``"#:(file)::a.b"`` -> ``("file", "a.b")``; a key
    without the prefix -> ``(None, key)``."""
    if key.startswith(STORE_PREFIX):
        match = _STORE_KEY.fullmatch(key)
        if match is not None:
            return match.group(1), match.group(2)
    return None, key
