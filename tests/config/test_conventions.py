"""The conventions checker (tools/check_conventions.py) catches what STYLE.md rule 5 forbids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.check_conventions import ROOT, check_text, is_thin_module

VIEWS = ROOT / "apps" / "flows" / "views.py"


@pytest.mark.parametrize(
    ("path", "thin"),
    [
        ("apps/flows/views.py", True),
        ("apps/flows/api.py", True),
        ("apps/devices/consumers.py", True),
        ("apps/pipelines/tasks.py", True),
        ("apps/teams/views/members.py", True),
        ("apps/teams/selectors.py", False),
        ("apps/teams/access.py", False),
        ("apps/teams/services/teams.py", False),
        ("config/views.py", False),
        ("apps/views.py", False),
    ],
)
def test_thin_modules_are_recognised(path: str, thin: bool) -> None:
    assert is_thin_module(ROOT / path) is thin


def test_manager_in_a_view_is_reported_with_its_line() -> None:
    source = "def view(request):\n    x = 1\n    return Flow.objects.get(pk=1)\n"
    (violation,) = check_text(VIEWS, source)
    assert violation.line == 3
    assert "access_*" in violation.message


def test_manager_in_selectors_strings_comments_and_none_is_allowed() -> None:
    assert check_text(ROOT / "apps/flows/selectors.py", "Flow.objects.filter(team=t)\n") == []
    allowed = (
        'HELP = "never call Flow.objects.get here"\n'
        "# Flow.objects.get would bypass the team filter\n"
        "def get_queryset(self):\n    return Flow.objects.none()\n"
    )
    assert check_text(VIEWS, allowed) == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("x = f()  # type: ignore\n", "needs an error code"),
        ("x = f()  # type: ignore[arg-type]\n", "needs a reason"),
        ("x = f()  # type: ignore[arg-type] \n", "needs a reason"),
    ],
)
def test_type_ignore_needs_a_code_and_a_reason(line: str, problem: str) -> None:
    (violation,) = check_text(ROOT / "apps/core/x.py", line)
    assert problem in violation.message


def test_type_ignore_with_code_and_reason_passes() -> None:
    line = "x = f()  # type: ignore[arg-type]  # stubs lack the overload\n"
    assert check_text(ROOT / "apps/core/x.py", line) == []


@pytest.mark.slow  # a subprocess: outside `make test-fast`
def test_cli_exits_non_zero_and_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "apps" / "flows" / "tasks.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def run():\n    Flow.objects.all().delete()\n")
    good = tmp_path / "apps" / "flows" / "services.py"
    good.write_text("def run():\n    Flow.objects.all().delete()\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_conventions.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "tasks.py:2: model manager" in result.stdout
    assert "services.py" not in result.stdout
