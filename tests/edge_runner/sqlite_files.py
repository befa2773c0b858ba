"""SQLite files as an older runner left them (the queues the outbox replaced)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def sqlite_file(path: Path, create: str, insert: str, rows: Iterable[tuple[Any, ...]]) -> Path:
    """Create ``path`` with one table (``create``) holding ``rows`` (``insert``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute(create)
            db.executemany(insert, rows)
    finally:
        db.close()
    return path


def table_names(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()
