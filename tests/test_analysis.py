"""The analyses of scripts/analyze.py recover known answers (randlora/analysis/).

- rank-need: on the synthetic task, full fine-tuning's ΔW towards a rank-2 target has effective rank 2 and
  truncating it to rank 2 keeps FT's error; towards a full-rank target it has nearly full rank and truncation
  to rank 2 loses most of what FT learned.
- CKA: 1 with itself, invariant to orthogonal transforms and isotropic scaling, equal to a hand computation.
- landscape: the values at the grid points standing for the three runs are those runs' losses evaluated
  directly; a point between two runs is the model with the averaged weights.
Runs are real `train()` runs on a 16-wide synthetic network (a few seconds each), shared by the tests.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers_training import training_config

from randlora.analysis.cka import activations, cka, linear_cka
from randlora.analysis.evaluate import evaluate, task_examples
from randlora.analysis.landscape import coefficients, grid, landscape, plane_state
from randlora.analysis.rank_need import rank_need
from randlora.analysis.runs import load_run, load_runs
from randlora.analysis.spectra import energy_rank, entropy_rank, subspace_overlap, truncate
from randlora.analysis.weights import DELTA_FILE, load_delta_weights

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["experiment=offline_synthetic", "backbone.model_kwargs.width=16", "task.train_size=2048",
         "task.val_size=64", "task.test_size=256", "loader.batch_size=64", "loader.eval_batch_size=256",
         "trainer.max_epochs=10", "trainer.limit_train_batches=1.0", "trainer.limit_val_batches=1.0",
         "trainer.limit_test_batches=1.0", "~logger", "callbacks.lr_monitor=null", "callbacks.resume_checkpoint=null",
         "save_full_weights=true"]  # 320 steps, about 2 s of CPU per run
RUNS = {  # name -> overrides; the rank-2 target unless said otherwise
    "ft_rank2": ["adapter=full", "optim.lr=1e-2", "task.target_rank=2"],
    "ft_fullrank": ["adapter=full", "optim.lr=1e-2", "task.target_rank=null"],
    "lora_rank2": ["adapter=lora", "adapter.rank=2", "optim.lr=3e-2", "task.target_rank=2"],
    "randlora_rank2": ["adapter=randlora", "adapter.rank=4", "optim.lr=3e-2", "task.target_rank=2"],
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """16-wide matrices: a second thread only adds synchronisation (costly on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory) -> dict[str, Path]:
    from randlora.train import train

    root = tmp_path_factory.mktemp("analysis_runs")
    for name, overrides in RUNS.items():
        result = train(training_config(root, SMALL + overrides, run=name))
        assert result["status"] == "ok"
    return {name: root / name for name in RUNS}


# --- rank-need ----------------------------------------------------------------------------------------------
def test_rank_need_recovers_the_rank_of_a_known_target(run_dirs, tmp_path):
    tables = {}
    for target in ("rank2", "fullrank"):
        runs = load_runs([run_dirs[f"ft_{target}"]])
        examples = task_examples(runs[0], "test", None)
        tables[target] = rank_need(runs, examples, tmp_path / target, formats=("png",))
        assert {p.name for p in (tmp_path / target).iterdir()} == {
            "spectra.csv", "effective_ranks.csv", "truncation.csv", "rank_need.png"}
    ranks2, ranks_full = tables["rank2"]["effective_ranks"], tables["fullrank"]["effective_ranks"]
    assert list(ranks2["rank_90"]) == [2, 2] and (ranks2["rank_99"] <= 3).all(), ranks2  # a rank-2 update
    assert (ranks2["entropy_rank"] < 5).all() and (ranks_full["rank_90"] >= 12).all(), (ranks2, ranks_full)
    assert (ranks_full["entropy_rank"] > 14).all()            # nearly flat over 16 directions

    def error_at(target: str, k: int | None) -> float:
        rows = tables[target]["truncation"]
        return float(rows[rows.k.isna() if k is None else rows.k == k]["rel_error"].iloc[0])

    for target in ("rank2", "fullrank"):
        assert error_at(target, None) < 0.02                   # FT reached the target
        assert error_at(target, 16) == pytest.approx(error_at(target, None), abs=1e-6)  # full rank = FT itself
        assert error_at(target, 0) > 0.9                       # no update: nothing learned
    assert error_at("rank2", 2) < error_at("rank2", None) + 0.02    # rank 2 keeps what FT learned
    assert error_at("fullrank", 2) > 0.6                            # ... and loses most of a full-rank one


def test_adapter_runs_get_spectra_and_overlap_with_ft(run_dirs, tmp_path):
    runs = load_runs([run_dirs["lora_rank2"], run_dirs["ft_rank2"]])
    assert [r.label for r in runs] == ["FT", "LoRA r2"]       # FT moved to the front
    ranks = rank_need(runs, task_examples(runs[0], "test", 64), tmp_path, ks=[1, 2],
                      formats=("png",))["effective_ranks"]
    lora = ranks[ranks.run == "LoRA r2"]
    assert (lora["rank_99"] <= 2).all()                        # a LoRA r2 update has rank <= 2
    assert (lora["overlap_left"] > 0.9).all() and (lora["overlap_right"] > 0.9).all(), lora  # FT's subspace


def test_save_full_weights_writes_the_updates_the_analysis_rebuilds(run_dirs):
    for name in ("ft_rank2", "lora_rank2"):
        saved = load_delta_weights(run_dirs[name] / DELTA_FILE)
        rebuilt = load_run(run_dirs[name]).deltas
        assert list(saved) == list(rebuilt) == ["layers.0", "layers.1"]
        for layer, delta in rebuilt.items():
            torch.testing.assert_close(saved[layer], delta, rtol=0, atol=1e-6)


def test_spectra_definitions_on_known_matrices():
    singular = torch.tensor([3.0, 2.0, 1.0, 0.0])             # energies 9, 4, 1, 0 of 14
    assert [energy_rank(singular, f) for f in (0.5, 0.9, 0.99, 1.0)] == [1, 2, 3, 3]
    assert entropy_rank(torch.ones(5)) == pytest.approx(5) and entropy_rank(torch.tensor([2.0, 0, 0])) == 1
    delta = torch.randn(12, 8, dtype=torch.float64)
    assert torch.linalg.matrix_rank(truncate(delta, 3)) == 3
    torch.testing.assert_close(truncate(delta, 8), delta)
    q = torch.linalg.qr(torch.randn(12, 12, dtype=torch.float64))[0]
    a = q[:, :2] @ torch.randn(2, 8, dtype=torch.float64)
    b = q[:, 2:4] @ torch.randn(2, 8, dtype=torch.float64)
    assert subspace_overlap(a, 3 * a, 2) == pytest.approx((1.0, 1.0))
    assert subspace_overlap(a, b, 2)[0] == pytest.approx(0.0, abs=1e-12)


# --- CKA ----------------------------------------------------------------------------------------------------
def test_linear_cka_identity_invariances_and_a_hand_computation():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    y = x @ torch.randn(6, 5, generator=gen, dtype=torch.float64) + 0.5 * torch.randn(40, 5, generator=gen,
                                                                                         dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))[0]
    assert linear_cka(x, x) == pytest.approx(1.0)
    base = linear_cka(x, y)
    assert 0 < base < 1
    assert linear_cka(x @ q, y) == pytest.approx(base)        # orthogonal transform
    assert linear_cka(7.5 * x, 0.1 * y) == pytest.approx(base)  # isotropic scaling
    assert linear_cka(x + 3.0, y) == pytest.approx(base)      # a constant shift is centred away
    assert linear_cka(x * torch.arange(1, 7), y) != pytest.approx(base, abs=1e-3)  # anisotropic scaling is not
    # one feature each: CKA is the squared correlation; centred x = (-1, 0, 1), y = (0, -1, 1):
    # (x·y)² / (|x|² |y|²) = 1 / (2 · 2)
    assert linear_cka(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1.0], [0.0], [2.0]])) == pytest.approx(0.25)


def test_cka_of_runs_compares_every_layer_with_ft(run_dirs, tmp_path):
    runs = load_runs([run_dirs["ft_rank2"], run_dirs["lora_rank2"], run_dirs["randlora_rank2"]])
    examples = task_examples(runs[0], "test", 128)
    table = cka(runs, examples, tmp_path, formats=("png",))
    assert (tmp_path / "cka.csv").is_file() and (tmp_path / "cka.png").is_file()
    assert set(table.run) == {"LoRA r2", "RandLoRA r4", "pretrained (W0)"}
    assert list(table[table.run == "LoRA r2"].layer) == ["layers.0", "layers.1", "model output"]
    acts_lora, acts_ft = (activations(r.model, examples, ["layers.0"])["layers.0"] for r in runs[:2])
    lora_first = table[(table.run == "LoRA r2") & (table.layer == "layers.0")].cka_with_ft.item()
    assert lora_first == pytest.approx(linear_cka(acts_ft, acts_lora))
    assert table.cka_with_ft.between(0, 1 + 1e-9).all()


# --- landscape ----------------------------------------------------------------------------------------------
def test_plane_coefficients_put_the_runs_where_the_authors_did():
    assert coefficients(0, 0) == (1, 0, 0)                  # RandLoRA
    assert coefficients(0.5, 1) == (0, 1, 0)                # FT
    assert coefficients(1, 0) == (0, 0, 1)                  # LoRA
    assert all(sum(coefficients(x, y)) == pytest.approx(1) for x in (-1, 0.3) for y in (-0.5, 1.7))
    assert len(grid(-1, 1.5, 0.1)) == 25 and 0.5 in grid(-1, 1.5, 0.1) and 1.0 in grid(-0.5, 2, 0.1)


def test_landscape_at_the_runs_equals_their_losses(run_dirs, tmp_path):
    runs = load_runs([run_dirs["ft_rank2"], run_dirs["randlora_rank2"], run_dirs["lora_rank2"]])
    examples = task_examples(runs[0], "train", 128)
    table = landscape(runs, examples, tmp_path, step=0.5, name="plane", formats=("png",))
    assert {p.name for p in tmp_path.iterdir()} == {"plane.csv", "plane_contour.png", "plane_surface.png"}
    assert len(table) == 5 * 5
    for run, (x, y) in zip(runs, [(0.5, 1.0), (0.0, 0.0), (1.0, 0.0)]):
        row = table[(table.x == x) & (table.y == y)].iloc[0]
        assert row.run_at_point == run.label
        assert row.loss == evaluate(run.model, examples)["loss"]   # the same weights, to the last bit
    # (0.5, 0): halfway between RandLoRA and LoRA
    states = {role: r.model.state_dict() for role, r in zip(("full", "randlora", "lora"), runs)}
    middle = plane_state(states, runs[0].model.state_dict(), 0.5, 0.0)
    runs[0].model.load_state_dict(middle)
    row = table[(table.x == 0.5) & (table.y == 0.0)].iloc[0]
    assert row.loss == pytest.approx(evaluate(runs[0].model, examples)["loss"], rel=1e-6)
    assert pd.read_csv(tmp_path / "plane.csv").shape == table.shape


def test_a_rebuilt_run_that_does_not_score_its_record_is_refused(run_dirs, tmp_path):
    import json
    import shutil

    load_runs([run_dirs["lora_rank2"]])                      # rebuilt as trained: accepted
    copy = tmp_path / "run"
    shutil.copytree(run_dirs["lora_rank2"], copy)
    result = json.loads((copy / "result.json").read_text())
    result["metrics"]["test/rel_error"] = 0.5                 # as if the file now meant another model
    (copy / "result.json").write_text(json.dumps(result))
    with pytest.raises(ValueError, match="scores test/rel_error .* but the run recorded 0.5000"):
        load_runs([copy])


def test_analyze_script_rejects_a_folder_without_a_run(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "analyze.py"), "cka", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "no result.json" in done.stderr
