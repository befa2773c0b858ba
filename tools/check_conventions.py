"""House conventions that ruff and mypy cannot see (STYLE.md rule 5). Exit 1 on any violation.

* Views, API modules, consumers and tasks of ``apps/`` never touch model managers
  (``.objects.``, except the empty ``.objects.none()``): ids become objects through
  ``access_*`` and reads go through selectors, where the team filter lives.
* ``type: ignore`` names its error code and says why: ``# type: ignore[code]  # reason``.

    python tools/check_conventions.py [PATH ...]   (default: the whole project)
"""

from __future__ import annotations

import io
import re
import sys
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("apps", "config", "edge_runner", "tools", "tests")
SKIPPED_PARTS = {"migrations", "__pycache__", "node_modules", ".venv"}
THIN_MODULES = {"views", "api", "consumers", "tasks"}

# ``.objects.none()`` returns nothing, so it cannot leak (schema generation needs it).
MANAGER = re.compile(r"\.objects\.(?!none\(\))")
TYPE_IGNORE = re.compile(r"type:\s*ignore(?P<code>\[[^\]]*\])?(?P<rest>.*)$")
REASON = re.compile(r"^\s*#\s*\S")


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}: {self.message}"


def is_thin_module(path: Path) -> bool:
    """views.py / api.py / consumers.py / tasks.py of an app, or files inside such a package."""
    parts = path.parts
    if "apps" not in parts:
        return False
    inside = parts[parts.index("apps") + 1 :]
    return any(Path(part).stem in THIN_MODULES for part in inside[1:])


def _comments_and_code(text: str) -> Iterator[tuple[int, str, str]]:
    """(line, kind, text) for comments and for code tokens; strings are skipped."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                yield token.start[0], "comment", token.string
            elif token.type in (tokenize.NAME, tokenize.OP):
                yield token.start[0], "code", token.string
    except (tokenize.TokenError, SyntaxError):
        return


def check_text(path: Path, text: str) -> list[Violation]:
    violations = []
    thin = is_thin_module(path)
    code_lines: dict[int, list[str]] = {}
    for line, kind, value in _comments_and_code(text):
        if kind == "comment":
            match = TYPE_IGNORE.search(value)
            if match is None:
                continue
            if not match["code"]:
                violations.append(Violation(path, line, "type: ignore needs an error code"))
            elif not REASON.match(match["rest"]):
                violations.append(
                    Violation(
                        path, line, "type: ignore needs a reason: '# type: ignore[code]  # why'"
                    )
                )
        else:
            code_lines.setdefault(line, []).append(value)
    if thin:
        for line, tokens in sorted(code_lines.items()):
            if MANAGER.search("".join(tokens)):
                violations.append(
                    Violation(
                        path,
                        line,
                        "model manager in a view/api/consumer/task module: "
                        "use the app's access_* or selectors",
                    )
                )
    return violations


def python_files(paths: Iterable[Path]) -> Iterator[Path]:
    for base in paths:
        candidates = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for path in candidates:
            if path.suffix == ".py" and not SKIPPED_PARTS.intersection(path.parts):
                yield path


def main(argv: list[str]) -> int:
    roots = [Path(arg).resolve() for arg in argv] or [ROOT / name for name in SCANNED]
    violations = [
        violation
        for path in python_files(root for root in roots if root.exists())
        for violation in check_text(path, path.read_text(encoding="utf-8"))
    ]
    for violation in violations:
        print(violation)
    print(f"conventions: {len(violations)} violation(s)", file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
