"""docs/FIDELITY.md: one table, every row names a test that exists."""
from __future__ import annotations

import re

from randlora.utils.config import REPO_ROOT


def test_every_fidelity_row_names_existing_tests():
    text = (REPO_ROOT / "docs" / "FIDELITY.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) >= 30
    for row in rows:
        tests = row.rstrip(" |").rsplit("|", 1)[-1]
        names = re.findall(r"`(test_\w+\.py)(?:::(test_\w+))?`", tests)
        assert names, f"row without a test: {row[:60]}"
        current = None
        for file, function in names:
            current = file
            source = (REPO_ROOT / "tests" / current).read_text(encoding="utf-8")
            assert not function or re.search(rf"def {function}\(", source), f"{file}::{function} missing"
        for function in re.findall(r"`::(test_\w+)`", tests):  # continuation of the previous file
            assert re.search(rf"def {function}\(", source), f"{current}::{function} missing"
