"""The public API's types are checked: wrong spawn arguments are mypy errors (issue 9 §5).

`typing_cases/*.py` are run through mypy (strict); a line marked `# E: text` must get an
error containing `text`, and no other line may get one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

CASES = Path(__file__).parent / "typing_cases"


@pytest.mark.parametrize("case", sorted(CASES.glob("*.py")), ids=lambda p: p.stem)
def test_typing_cases(case: Path) -> None:
    expected: dict[int, str] = {}
    for n, line in enumerate(case.read_text().splitlines(), 1):
        m = re.search(r"# E: (.+)$", line)
        if m and not line.lstrip().startswith("#"):
            expected[n] = m.group(1).strip()
    out, err, _status = mypy_api.run(
        ["--strict", "--no-error-summary", "--hide-error-context", str(case)]
    )
    got: dict[int, list[str]] = {}
    for line in out.splitlines():
        m = re.match(rf".*{re.escape(case.name)}:(\d+): error: (.+)", line)
        if m:
            got.setdefault(int(m.group(1)), []).append(m.group(2))
    assert not err, err
    unexpected = {n: msgs for n, msgs in got.items() if n not in expected}
    assert unexpected == {}, out
    for n, text in expected.items():
        assert any(text in msg for msg in got.get(n, [])), (n, text, got.get(n), out)
