"""The test suite's own layout: every directory's tests can be collected together.

Each test directory's `conftest.py` is imported under the one name `conftest`, so a
helper imported `from conftest import ...` resolved to whichever directory's conftest
came first (running tests/scale and tests/distribution in one session failed). Shared
helpers live in modules named after them (`dist_nodes`, `scale_nodes`, ...).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_module_imports_a_conftest() -> None:
    bad = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if "conftest" in names:
                bad.append(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert bad == []


def test_scale_and_distribution_collect_in_one_session() -> None:
    """The failure this layout fixes: `pytest tests/scale tests/distribution`."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:randomly",
            "tests/scale",
            "tests/distribution",
            "tests/observe",
            "tests/behaviours",
        ],
        check=False,
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        env=env,
        timeout=50,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "error" not in r.stdout.lower().splitlines()[-1]
