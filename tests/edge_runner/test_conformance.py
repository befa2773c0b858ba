"""The shared black-box conformance set (ENGINE_CONTRACT.md) against the real CLI process.

Runs ``../shared/conformance/run_conformance.py`` with our serve command; every case must pass
(the same driver passes 36/36 against Node-RED 5.0.7).
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
DRIVER = SHARED / "conformance" / "run_conformance.py"
CASES = SHARED / "conformance" / "cases.json"


@pytest.mark.slow
@pytest.mark.skipif(not DRIVER.is_file(), reason=f"conformance driver not found at {DRIVER}")
def test_conformance_cases_all_pass() -> None:
    cmd = (
        f"{sys.executable} -m edge_runner serve --host 127.0.0.1 --port {{port}} "
        "--userdir {userdir}"
    )
    result = subprocess.run(
        [sys.executable, str(DRIVER), "--cmd", cmd, "--cases", str(CASES)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    summary = re.search(r"^(\d+) passed, (\d+) failed$", result.stdout, re.MULTILINE)
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert summary is not None, result.stdout[-2000:] + result.stderr[-2000:]
    total = len(json.loads(CASES.read_text())["cases"])
    assert summary.group(0) == f"{total} passed, 0 failed", "\n".join(failures)
