"""experiments/<name>/recipe.txt are current and equal what ``train.py ... --cfg job --resolve`` prints."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from randlora.experiments.recipes import EXPERIMENTS_DIR, MACHINE_FREE, RECIPES, recipe_text, resolved_job
from randlora.utils.config import REPO_ROOT


def _stored(name: str) -> str:
    path = EXPERIMENTS_DIR / name / "recipe.txt"
    assert path.is_file(), f"{path} is missing: run python scripts/write_recipes.py"
    return path.read_text(encoding="utf-8")


def test_every_paper_experiment_has_a_recipe_of_each_variant():
    for name in RECIPES:
        text = _stored(name)
        assert all(f"# === python train.py {' '.join(o)}\n" in text for o in RECIPES[name]), name
    assert "convention: authors_vision" in _stored("fig3_clip") and "num_beams: 4" in _stored("table1_commonsense")


# Any config change makes a recipe stale, so the full comparison is slow-marked: run it (or just
# python scripts/write_recipes.py) after changing configs.


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RECIPES))
def test_recipes_are_current(name):
    assert _stored(name) == recipe_text(name), "stale: run python scripts/write_recipes.py"


@pytest.mark.slow
def test_recipe_equals_the_cfg_job_resolve_output():
    overrides = RECIPES["fig3_clip"][-1]
    env = {**os.environ, "RANDLORA_ROOT": "<repo>", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), *overrides, *MACHINE_FREE, "--cfg", "job",
                           "--resolve"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == resolved_job(overrides).strip()
