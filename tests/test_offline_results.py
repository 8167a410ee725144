"""The committed offline results regenerate byte for byte from their committed summary.csv: tables with
scripts/make_tables.py, figures with scripts/make_figures.py (the commands of experiments/offline/run.sh report)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# part -> (the metrics its report writes, the figures it draws): as experiments/offline/run.sh's report does
PARTS = {"synthetic": (["test/rel_error"], ["--only", "params"]),
         "tweets": (["test/acc"], ["--only", "params", "--only", "heatmap"]),
         "commonsense": (["test/acc", "test/extracted"], ["--only", "params"])}


@pytest.mark.parametrize("part", list(PARTS))
def test_committed_tables_and_figures_regenerate_byte_for_byte(part, tmp_path):
    committed = REPO / "results" / "offline" / part
    if not (committed / "summary.csv").is_file():
        pytest.skip(f"results/offline/{part} is not committed")
    shutil.copy(committed / "summary.csv", tmp_path / "summary.csv")
    metrics, figures = PARTS[part]
    for metric in metrics:
        for script, extra in (("make_tables.py", []), ("make_figures.py", [*figures, "--formats", "png"])):
            done = subprocess.run([sys.executable, str(REPO / "scripts" / script), "--results-dir", str(tmp_path),
                                   "--metric", metric, *extra], capture_output=True, text=True, cwd=REPO)
            assert done.returncode == 0, done.stderr[-2000:]
    files = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file() and p.parent != committed)
    assert files, f"results/offline/{part} holds no tables or figures"
    for name in files:
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), f"{part}/{name} differs"
