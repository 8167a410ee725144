"""Results -> summaries -> tables -> figures, on result.json files generated in the real schema.

The fixture tree holds several seeds, adapters and ranks, a failed run, a truncated file, a run folder
without a result, and cells that are missing on purpose (RandLoRA "performant" in Table 1, NoLA everywhere).
"""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from randlora import reporting as rio

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_result(root: Path, run_id: str, *, task: str, backbone: str, adapter: str, seed: int,
                 metrics: dict | None, status: str = "ok", error: str | None = None, rank: int | None = None,
                 lr: float = 1e-3, lr_ratio: float | None = None, budget: float | str | None = None,
                 trainable: int = 1000, memory: float = 500.0, task_cfg: dict | None = None,
                 adapter_cfg: dict | None = None, folder: str | None = None) -> Path:
    """One result.json in the schema of ARCHITECTURE.md, under <root>/<task>/<folder>/<adapter>/<run_id>/.

    ``backbone`` is what the run records (``backbone.name``, e.g. "ViT-B-32"); ``folder`` is the backbone's
    config name that the run folder uses (e.g. "clip_vitb32"), by default the same.
    """
    result = {
        "schema": 1, "status": status, "error": error, "run_id": run_id, "started": "2025-01-01T00:00:00",
        "task": task, "subtask": None, "backbone": backbone, "adapter": adapter, "rank": rank, "alpha": 640,
        "lr": lr, "lr_ratio": lr_ratio, "seed": seed, "basis_seed": seed, "budget": budget,
        "metrics": metrics or {}, "params": {"trainable": trainable, "total": 10**6},
        "peak_memory_mb": memory, "wall_time_s": 10.0, "samples_per_s": 100.0, "git_commit": "abc",
        "versions": {"torch": "2"}, "basis_checksum": None,
        "config": {"task": {"name": task, **(task_cfg or {})},
                   "adapter": {"name": adapter, "rank": rank, **(adapter_cfg or {})}},
    }
    path = root / task / (folder or backbone) / adapter / run_id / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return path


TWEETS_ACC = {  # (adapter, rank) -> test/acc per seed 0, 1, 2
    ("lora", 4): [0.60, 0.62, 0.64], ("lora", 8): [0.70, 0.72, 0.74],
    ("randlora", 8): [0.75, 0.76, 0.77], ("randlora", 16): [0.71, 0.73, 0.75],
    ("vera", 256): [0.65, 0.65, 0.65], ("full", None): [0.80, 0.82, 0.84],
}
TRAINABLE = {("lora", 4): 4000, ("lora", 8): 8000, ("randlora", 8): 9000, ("randlora", 16): 5000,
             ("vera", 256): 300, ("full", None): 10**6}


def make_runs(root: Path) -> Path:
    """Write the whole fixture tree under ``root`` (also handy to look at the outputs by hand)."""
    for (adapter, rank), accs in TWEETS_ACC.items():
        for seed, acc in enumerate(accs):
            write_result(root, f"{adapter}{rank}-s{seed}", task="tweets", backbone="minilm", adapter=adapter,
                         rank=rank, seed=seed, metrics={"val/acc_best": acc, "test/acc": acc},
                         trainable=TRAINABLE[(adapter, rank)], memory=1000.0 if adapter == "full" else 400.0 + seed)
    # a failed run of a configuration that has ok runs, and a configuration with only a failed run
    write_result(root, "lora8-s3", task="tweets", backbone="minilm", adapter="lora", rank=8, seed=3, status="failed",
                 error="Traceback ...\nFloatingPointError: loss is NaN at step 12", metrics={"val/acc_best": 0.0})
    write_result(root, "lora64-s0", task="tweets", backbone="minilm", adapter="lora", rank=64, seed=0,
                 status="failed", error="RuntimeError: out of memory", metrics=None)
    # a truncated file (killed mid-write by a non-atomic writer) and a run folder without any result
    good = write_result(root, "randlora16-s3", task="tweets", backbone="minilm", adapter="randlora", rank=16,
                        seed=3, metrics={"test/acc": 0.99})
    good.write_text(good.read_text()[:120])
    (root / "tweets" / "minilm" / "vera" / "killed-run").mkdir()
    # LoRA+ sweep: rank x lr_ratio
    for rank in (4, 8):
        for ratio in (1.0, 4.0, 16.0):
            for seed in (0, 1):
                acc = 0.6 + 0.01 * rank / 4 + 0.02 * math.log2(ratio) / 4 + 0.01 * seed
                write_result(root, f"lp{rank}-{ratio:g}-s{seed}", task="tweets", backbone="minilm",
                             adapter="loraplus", rank=rank, lr_ratio=ratio, seed=seed,
                             metrics={"val/acc_best": acc, "test/acc": acc}, trainable=1000 * rank)
    # Table 1: LLaMA3-8B on 170k; budgets as a parameter target, a word, or (none) the paper's rank pairing;
    # RandLoRA "performant" deliberately missing
    llama = {"backbone": "meta-llama/Meta-Llama-3-8B", "folder": "llama3_8b", "task": "commonsense", "lr": 1e-4,
             "task_cfg": {"train_set": "170k", "train_path": "data/commonsense/commonsense_170k.json"}}
    for adapter, budget, rank, accs in [("lora", 28e6, 16, [0.83, 0.85]), ("lora", None, 32, [0.85, 0.86]),
                                        ("randlora", "efficient", 60, [0.845, 0.845]),
                                        ("vera", None, 256, [0.80, 0.82])]:
        for seed, acc in enumerate(accs):
            write_result(root, f"{adapter}-{budget}-s{seed}", adapter=adapter, rank=rank, budget=budget, seed=seed,
                         metrics={"test/acc": acc, "test/acc/boolq": acc - 0.1}, **llama)
    write_result(root, "lora-perf-s2", adapter="lora", rank=32, seed=2, status="failed", error="CUDA out of memory",
                 metrics=None, **llama)
    # Figure 3: CLIP ViT-B/32, two datasets, regimes 1-shot and all data (shots and fraction both null)
    for dataset, offset in (("dtd", 0.0), ("eurosat", 0.2)):
        for shots, base in ((1, 0.5), (None, 0.7)):
            for adapter, rank, bonus, memory in (("randlora", 6, 0.02, 6600.0), ("lora", 32, 0.0, 6900.0)):
                for seed in (0, 1):
                    write_result(root, f"{dataset}-{shots}-{adapter}-s{seed}", task="fewshot", backbone="ViT-B-32",
                                 folder="clip_vitb32", adapter=adapter, rank=rank, seed=seed,
                                 metrics={"val/acc_best": base + offset + bonus, "test/acc": base + offset + bonus
                                          + 0.01 * seed}, memory=memory,
                                 task_cfg={"dataset": dataset, "shots": shots, "fraction": None},
                                 adapter_cfg={"basis": "dense"} if adapter == "randlora" else None)
    # sparse-basis RandLoRA: its own configuration, not in the paper's (dense) Figure 3 cells
    write_result(root, "dtd-sparse-s0", task="fewshot", backbone="ViT-B-32", folder="clip_vitb32", adapter="randlora",
                 rank=6, seed=0, metrics={"val/acc_best": 0.99, "test/acc": 0.99},
                 task_cfg={"dataset": "dtd", "shots": 1, "fraction": None}, adapter_cfg={"basis": "sparse"})
    # the synthetic task reports an error (lower is better)
    for adapter, rank, trainable, err in (("lora", 2, 200, 0.5), ("lora", 4, 400, 0.45), ("randlora", 4, 220, 0.2),
                                          ("randlora", 2, 420, 0.1)):
        for seed in (0, 1, 2):
            write_result(root, f"syn-{adapter}{rank}-s{seed}", task="synthetic_fullrank", backbone="randnet",
                         adapter=adapter, rank=rank, seed=seed, trainable=trainable,
                         metrics={"val/rel_error": err, "test/rel_error": err + 0.01 * seed})
    return root


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture tree, written once for this module; tests only read it."""
    return make_runs(tmp_path_factory.mktemp("reporting") / "runs")


@pytest.fixture()
def runs(runs_dir: Path) -> pd.DataFrame:
    return rio.collect(runs_dir)


def _row(frame: pd.DataFrame, **values) -> pd.DataFrame:
    return rio.select_rows(frame, **values)


# ------------------------------------------------------------------------------------------- reading

@pytest.mark.parametrize("content, reason", [
    ('{"schema": 1, "status": "ok", "task": "tw', "invalid or truncated JSON"),
    ("", "empty file"),
    ("[1, 2]", "top level must be a JSON object"),
    ('{"schema": 2, "status": "ok", "task": "t", "backbone": "b", "adapter": "a"}', "schema 2 is not supported"),
    ('{"schema": 1, "status": "done", "task": "t", "backbone": "b", "adapter": "a"}', "status 'done'"),
    ('{"schema": 1, "status": "ok", "backbone": "b", "adapter": "a"}', "'task' is missing"),
    ('{"schema": 1, "status": "ok", "task": "t", "backbone": "b", "adapter": "a", "rank": "8"}', "'rank' must be int"),
    ('{"schema": 1, "status": "ok", "task": "t", "backbone": "b", "adapter": "a", "metrics": {"test/acc": "0.7"}}',
     "must be a number"),
    ('{"schema": 1, "status": "ok", "task": "t", "backbone": "b", "adapter": "a", "metrics": {"test/acc": NaN}}',
     "is nan in a run marked ok"),
    ('{"schema": 1, "status": "ok", "task": "t", "backbone": "b", "adapter": "a", "lr": true}', "'lr' must be number"),
    ('{"schema": 1, "status": "ok", "task": "t", "backbone": "b", "adapter": "a", "metrics": {"acc": 0.5}}',
     "must look like 'split/name'"),
    ('{"schema": 1, "status": "ok", "task": "t", "backbone": "b", "adapter": "a", "params": {"trainable": "9"}}',
     "params ['trainable'] must be numbers"),
])
def test_read_result_refuses_bad_files_naming_file_and_reason(tmp_path, content, reason):
    path = tmp_path / "result.json"
    path.write_text(content)
    with pytest.raises(rio.CorruptResultError) as caught:
        rio.read_result(path)
    assert reason in str(caught.value)
    assert str(path) in str(caught.value)


def test_read_result_accepts_failed_run_with_nan_metric(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"schema": 1, "status": "failed", "error": "NaN loss", "task": "t", "backbone": "b", '
                    '"adapter": "a", "metrics": {"train/loss": NaN}}')
    assert rio.read_result(path)["status"] == "failed"


def test_collect_one_row_per_run_with_statuses(runs):
    counts = rio.status_counts(runs)
    assert counts == {"ok": 18 + 12 + 8 + 16 + 1 + 12, "failed": 3, "interrupted": 0, "duplicate": 0, "corrupt": 1,
                      "incomplete": 1}
    for column in ["task", "subtask", "backbone", "adapter", "rank", "budget", "lr", "lr_ratio", "seed",
                   "basis_seed", "status", "error", "trainable", "total", "peak_memory_mb", "wall_time_s", "path",
                   "test/acc", "val/acc_best", "test/acc/boolq", "test/rel_error"]:
        assert column in runs.columns, column
    corrupt = runs[runs["status"] == "corrupt"].iloc[0]
    assert (corrupt["task"], corrupt["backbone"], corrupt["adapter"]) == ("tweets", "minilm", "randlora")
    assert "truncated" in corrupt["error"]
    assert math.isnan(corrupt["test/acc"])  # never 0
    incomplete = runs[runs["status"] == "incomplete"].iloc[0]
    assert incomplete["path"].endswith("killed-run")
    fewshot = _row(runs, task="fewshot", dataset="dtd", adapter="lora", seed=0)
    assert sorted(fewshot["regime"]) == ["1", "100%"]
    assert set(_row(runs, task="commonsense")["train_set"]) == {"170k"}
    assert set(_row(runs, task="fewshot")["basis"]) == {"dense", "sparse", None}
    assert set(_row(runs, task="tweets")["regime"]) == {None}  # no shots/fraction keys: no regime


def test_reads_what_the_result_writer_writes(tmp_path):
    """randlora.run.results (the writer) and this reader agree on schema 1, derived keys included."""
    from datetime import datetime

    from omegaconf import OmegaConf

    from randlora.run.results import build_result, write_result as write_real_result

    cfg = OmegaConf.create({
        "seed": 2, "budget": None,
        "task": {"name": "fewshot", "dataset": "eurosat", "shots": 4, "fraction": None, "sample_seed": 2},
        "backbone": {"name": "ViT-B-32"},
        "adapter": {"name": "randlora", "rank": 6, "alpha": None, "basis": "sparse", "basis_seed": 0},
        "optim": {"lr": 1e-3, "lr_ratio": None},
    })
    result = build_result(cfg, run_id="r1", started=datetime(2025, 1, 1), metrics={"test/acc": 0.5},
                          params={"trainable": 10, "total": 100}, wall_time_s=1.0)
    write_real_result(tmp_path / "fewshot" / "clip_vitb32" / "randlora_sparse" / "r1", result)
    row = rio.collect(tmp_path).iloc[0]
    assert (row["status"], row["task"], row["dataset"], row["regime"], row["basis"]) == \
        ("ok", "fewshot", "eurosat", "4", "sparse")
    assert (row["rank"], row["seed"], row["trainable"], row["test/acc"]) == (6, 2, 10, 0.5)
    assert rio.network_label(row["backbone"]) == "ViT-B/32"


def test_empty_results_give_paper_only_tables(tmp_path):
    (tmp_path / "runs").mkdir()
    runs = rio.collect(tmp_path / "runs")
    summary = rio.summarise(runs)
    assert len(runs) == 0 and len(summary) == 0
    table = rio.table1_commonsense(summary.assign(**{"test/acc:mean": [], "test/acc:std": []}),
                                   rio.read_reference(EXPERIMENTS / "table1_commonsense" / "reference.csv"), runs)
    assert table.filled_cells() == (0, 42)


def test_reading_results_does_not_import_matplotlib():
    """randlora.eval reads result.json through this package: importing it must stay light."""
    done = _run("-c", "import sys, randlora.reporting; assert 'matplotlib' not in sys.modules")
    assert done.returncode == 0


def test_collect_missing_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        rio.collect(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------- summarising

def test_summarise_mean_std_n_over_seeds_and_failures_not_averaged(runs):
    summary = rio.summarise(runs)
    lora8 = _row(summary, task="tweets", adapter="lora", rank=8).iloc[0]
    assert lora8["n"] == 3 and lora8["n_failed"] == 1 and lora8["seeds"] == "0,1,2"
    assert lora8["test/acc:mean"] == pytest.approx(0.72)
    assert lora8["test/acc:std"] == pytest.approx(0.02)  # sample std (ddof=1)
    assert lora8["val/acc_best:mean"] == pytest.approx(0.72)  # the failed run's 0.0 is not in it
    only_failed = _row(summary, task="tweets", adapter="lora", rank=64).iloc[0]
    assert only_failed["status"] == "failed" and only_failed["n"] == 0 and math.isnan(only_failed["test/acc:mean"])
    randlora16 = _row(summary, task="tweets", adapter="randlora", rank=16).iloc[0]
    assert randlora16["n"] == 3 and randlora16["test/acc:mean"] == pytest.approx(0.73)  # truncated 0.99 refused
    failed = rio.failures(runs)
    assert sorted(failed["status"]) == ["corrupt", "failed", "failed", "failed", "incomplete"]
    assert failed["error"].str.contains("loss is NaN").any()


def test_summarise_expected_grid_marks_missing_cells(runs):
    grid = rio.expected_grid(task=["tweets"], adapter=["lora", "nola"], rank=[8])
    summary = rio.summarise(runs, expected=grid)
    nola = _row(summary, task="tweets", adapter="nola", rank=8)
    assert len(nola) == 1 and nola.iloc[0]["status"] == "missing" and nola.iloc[0]["n"] == 0
    assert len(_row(summary, task="tweets", adapter="lora", rank=8)) == 1  # present cells are not duplicated
    with pytest.raises(KeyError, match="not configuration keys"):
        rio.summarise(runs, expected=rio.expected_grid(seed=[0]))


def test_runs_differing_in_an_untracked_config_entry_are_flagged_then_separated(tmp_path):
    root = tmp_path / "runs"
    for target_rank, error in ((None, 0.1), (4, 0.01)):
        for seed in (0, 1):
            write_result(root, f"t{target_rank}-s{seed}", task="synthetic_fullrank", backbone="randnet",
                         adapter="lora", rank=4, seed=seed, metrics={"test/rel_error": error},
                         task_cfg={"target_rank": target_rank, "split_seed": seed})
    mixed = rio.summarise(rio.collect(root))
    assert len(mixed) == 1 and mixed.iloc[0]["config_differs"] == "task.target_rank"  # split_seed is a seed
    separated = rio.summarise(rio.collect(root, config_fields={"target_rank": "task.target_rank"}))
    assert len(separated) == 2 and {rio.norm_key(v) for v in separated["target_rank"]} == {"4", None}
    assert separated["config_differs"].isna().all()
    assert sorted(separated["test/rel_error:mean"]) == [pytest.approx(0.01), pytest.approx(0.1)]
    done = _run("scripts/aggregate.py", str(root), "--out-dir", str(tmp_path / "out"))
    assert "averages runs whose configs differ in task.target_rank" in done.stdout


def test_runs_csv_round_trip_gives_the_same_summary(runs, tmp_path):
    path = rio.write_csv(runs, tmp_path / "summary.csv")
    again = rio.read_runs_csv(path)
    first, second = rio.summarise(runs), rio.summarise(again)
    pd.testing.assert_frame_equal(first, second, check_dtype=False)


def test_average_over_datasets_propagates_std():
    summary = pd.DataFrame([
        {"task": "t", "dataset": "a", "adapter": "lora", "status": "ok", "n": 3, "n_failed": 0, "seeds": "0,1,2",
         "test/acc:mean": 0.5, "test/acc:std": 0.03, "peak_memory_mb:mean": 10.0, "peak_memory_mb:std": 0.0},
        {"task": "t", "dataset": "b", "adapter": "lora", "status": "ok", "n": 2, "n_failed": 1, "seeds": "0,1",
         "test/acc:mean": 0.7, "test/acc:std": 0.04, "peak_memory_mb:mean": 30.0, "peak_memory_mb:std": 0.0},
    ])
    row = rio.average_over(summary, "dataset", ["test/acc", "peak_memory_mb"]).iloc[0]
    assert row["test/acc:mean"] == pytest.approx(0.6)
    assert row["test/acc:std"] == pytest.approx(0.025)  # sqrt(0.03² + 0.04²) / 2
    assert row["peak_memory_mb:mean"] == 30.0 and row["n"] == 2 and row["n_failed"] == 1 and row["n_dataset"] == 2


# ------------------------------------------------------------------------------------------- tables

def test_format_cell():
    assert rio.format_cell(84.62, 0.21, 3, 84.6) == "84.6 ± 0.2 (paper 84.6)"
    assert rio.format_cell(None, None, 0, 85.6) == "— (paper 85.6)"
    assert rio.format_cell(70.0, float("nan"), 1) == "70.0 (n=1)"
    assert rio.format_cell(float("nan")) == "—"


def test_table1_has_our_and_paper_numbers_and_dash_for_missing(runs):
    table = rio.table1_commonsense(rio.summarise(runs), rio.read_reference(
        EXPERIMENTS / "table1_commonsense" / "reference.csv"), runs)
    assert table.header[2:] == ["zero-shot", "NoLA", "VeRA", "LoRA eff", "LoRA perf", "RandLoRA eff", "RandLoRA perf"]
    row = next(r for r in table.rows if r[:2] == ["LLaMA3-8B", "170k"])
    assert row[5] == "84.0 ± 1.4 (paper 84.4)"  # LoRA eff: 83 and 85
    assert row[6] == "85.5 ± 0.7 (paper 85.2)"  # LoRA perf: 85, 86; the failed third seed is not averaged
    assert row[7] == "84.5 ± 0.0 (paper 84.6)"
    assert row[8] == "— (paper 85.6)"  # RandLoRA perf: no run
    assert row[4] == "81.0 ± 1.4 (paper 81.7)"  # VeRA
    assert row[2] == "— (paper 27.0)"
    qwen = next(r for r in table.rows if r[:2] == ["Qwen2-0.5B", "15k"])
    assert qwen[2:] == [f"— (paper {v})" for v in ("5.2", "42.6", "48.1", "53.2", "52.3", "53.5", "52.9")]
    assert any("Failed runs, not averaged in: 1" in note and "LoRA perf: 1" in note for note in table.footnotes)
    markdown, latex = rio.to_markdown(table), rio.to_latex(table)
    assert "| LLaMA3-8B | 170k |" in markdown and "84.0 ± 1.4 (paper 84.4)" in markdown
    assert r"84.0 $\pm$ 1.4 (paper 84.4)" in latex and r"\begin{tabular}{llccccccc}" in latex


def test_fig3_table_averages_datasets_and_shows_memory(runs):
    tables = rio.fig3_clip(rio.summarise(runs), rio.read_reference(EXPERIMENTS / "fig3_clip" / "reference.csv"), runs)
    assert [t.title.split(",")[0] for t in tables] == ["Figure 3 data: CLIP ViT-B/32", "Figure 3 data: CLIP ViT-L/14",
                                                      "Figure 3 data: CLIP ViT-H/14"]
    b32 = tables[0]
    assert b32.header == ["adapter", "1-shot", "2-shot", "4-shot", "16-shot", "50%", "100%", "memory (GB)"]
    randlora = next(r for r in b32.rows if r[0] == "RandLoRA6")
    # 1-shot: dtd 0.52/0.53, eurosat 0.72/0.73 -> mean of dataset means 62.5; std sqrt(2 * 0.707²)/2 = 0.5
    assert randlora[1] == "62.5 ± 0.5 (paper 62.5)"
    assert randlora[2] == "— (paper 66.9)"
    assert randlora[6] == "82.5 ± 0.5 (paper 84.4)"
    assert randlora[7] == "6.4 (paper 6.6)"  # 6600 MiB
    assert next(r for r in b32.rows if r[0] == "NoLA")[1] == "— (paper 58.4)"
    assert any("Datasets averaged per cell: 1, 2" in note for note in b32.footnotes)  # the sparse row: dtd only
    sparse = next(r for r in b32.rows if r[0] == "RandLoRA6 (sparse bases)")  # its own row, no paper number
    assert sparse[1:] == ["99.0 (n=1)", "—", "—", "—", "—", "—", "0.5"]
    l14 = tables[1]
    randlora_l14 = next(r for r in l14.rows if r[0] == "RandLoRA8")
    assert randlora_l14[1:] == ["— (paper 78.3)", "—", "—", "— (paper 84.5)", "— (paper 88.5)", "— (paper 90.1)",
                               "— (paper 21.7)"]  # 2 and 4 shots could not be read from the plot


def test_table1_budget_from_word_parameter_target_or_rank():
    assert rio.table1_budget("lora", 8, "Performant") == "performant"
    assert rio.table1_budget("randlora", None, 28.8e6) == "efficient"
    assert rio.table1_budget("lora", None, "56620000") == "performant"
    assert rio.table1_budget("lora", 16, 1e6) is None  # a parameter target far from both budgets
    assert rio.table1_budget("randlora", 30.0, None) == "performant"
    assert rio.table1_budget("vera", 256, None) is None


def test_footnotes_count_unreadable_files_where_they_belong(runs):
    summary = rio.summarise(runs)
    fig3 = rio.fig3_clip(summary, rio.read_reference(EXPERIMENTS / "fig3_clip" / "reference.csv"), runs)
    assert not any("Unreadable" in note for table in fig3 for note in table.footnotes)  # they are tweets runs
    broken = runs.copy()
    broken.loc[broken["status"] == "corrupt", ["task", "backbone"]] = ["commonsense", "llama3_8b"]
    table1 = rio.table1_commonsense(summary, rio.read_reference(
        EXPERIMENTS / "table1_commonsense" / "reference.csv"), broken)
    assert any("Unreadable or incomplete result files ignored: 1" in note for note in table1.footnotes)


def test_summary_table_any_summary(runs):
    summary = rio.summarise(runs)
    table = rio.summary_table(summary[summary["task"] == "tweets"], "test/acc")
    assert table.header[0] == "lr_ratio"
    assert "LoRA r8" in table.header and "RandLoRA r16" in table.header and "FT" in table.header
    row = next(r for r in table.rows if r[0] == "—")
    assert row[table.header.index("LoRA r8")] == "72.0 ± 2.0"
    assert row[table.header.index("LoRA r64")] == "—"  # failed only
    assert any("Failed runs, not averaged in: 2" in note for note in table.footnotes)
    with pytest.raises(KeyError, match="not in the summary"):
        rio.summary_table(summary, "test/f1")


def test_points_table_one_row_per_point_lr_chosen_by_validation(tmp_path):
    """Two lrs of LoRA r4: the one with the better val error is shown even though its test error is worse."""
    for lr, val, test in ((1e-2, 0.30, 0.35), (1e-1, 0.40, 0.20)):
        for seed in (0, 1, 2):
            write_result(tmp_path, f"l4-{lr}-{seed}", task="synthetic_fullrank", backbone="mlp", adapter="lora",
                         rank=4, lr=lr, seed=seed, trainable=1024,
                         metrics={"val/rel_error_best": val, "test/rel_error": test + 0.01 * seed})
    write_result(tmp_path, "ft-0", task="synthetic_fullrank", backbone="mlp", adapter="full", seed=0,
                 trainable=8192, metrics={"val/rel_error_best": 0.01, "test/rel_error": 0.02})
    write_result(tmp_path, "ft-1", task="synthetic_fullrank", backbone="mlp", adapter="full", seed=1,
                 status="failed", error="FloatingPointError: loss is NaN", metrics=None)
    table = rio.points_table(rio.summarise(rio.collect(tmp_path)), "test/rel_error")
    assert table.header == ["adapter", "trainable", "lr", "test/rel_error", "seeds"]
    assert table.rows == [["FT", "8,192", "0.001", "0.020 (n=1)", "1"],
                          ["LoRA r4", "1,024", "0.01", "0.360 ± 0.010", "3"]]
    assert any("Failed runs, not averaged in: 1" in note for note in table.footnotes)


def test_points_table_without_validation_says_how_it_chose_and_never_uses_the_test_metric(tmp_path):
    """Two lrs and no validation split (the offline commonsense runs): the footnote must not claim a choice by
    validation, and the better test score does not win: the setting with more seeds is shown."""
    for lr, seeds, test in ((1e-3, (0, 1), 0.25), (3e-3, (0,), 0.40)):
        for seed in seeds:
            write_result(tmp_path, f"l8-{lr}-{seed}", task="commonsense", backbone="smollm2", adapter="lora",
                         rank=8, lr=lr, seed=seed, trainable=1600, metrics={"test/acc": test})
    table = rio.points_table(rio.summarise(rio.collect(tmp_path)), "test/acc")
    assert table.rows == [["LoRA r8", "1,600", "0.001", "25.0 ± 0.0", "2"]]
    assert "best validation" not in table.footnotes[0] and "no validation metric" in table.footnotes[0]


def test_subtasks_table_per_task_accuracy_and_extraction_share(tmp_path):
    """Commonsense runs: one column per task and the mean, for test/acc and for test/extracted (in %)."""
    for adapter, rank, trainable, seeds in (("lora", 8, 1600, (0, 1)), ("none", None, 0, (0,))):
        for seed in seeds:
            base = 0.5 if adapter == "lora" else 0.2
            metrics = {"test/acc": base + 0.05 + 0.1 * seed, "test/acc/boolq": base + 0.1 * seed,
                       "test/acc/piqa": base + 0.1 + 0.1 * seed, "test/extracted": 1.0 if adapter == "lora" else 0.25,
                       "test/extracted/boolq": 1.0 if adapter == "lora" else 0.0,
                       "test/extracted/piqa": 1.0 if adapter == "lora" else 0.5}
            write_result(tmp_path, f"{adapter}-{seed}", task="commonsense", backbone="smollm2", adapter=adapter,
                         rank=rank, seed=seed, trainable=trainable, metrics=metrics)
    summary = rio.summarise(rio.collect(tmp_path))
    assert rio.subtask_columns(summary, "test/acc") == ["boolq", "piqa"]
    table = rio.subtasks_table(summary, "test/acc")
    assert table.header == ["adapter", "rank", "trainable", "boolq", "piqa", "mean", "seeds"]
    assert table.rows == [["zero-shot", "—", "0", "20.0", "30.0", "25.0", "1"],
                          ["LoRA", "8", "1,600", "55.0 ± 7.1", "65.0 ± 7.1", "60.0 ± 7.1", "2"]]
    extracted = rio.subtasks_table(summary, "test/extracted")
    assert [row[3:6] for row in extracted.rows] == [["0.0", "50.0", "25.0"], ["100.0 ± 0.0", "100.0 ± 0.0",
                                                                               "100.0 ± 0.0"]]
    assert rio.metric_label("test/extracted") == "test answers extracted (%)"
    with pytest.raises(KeyError, match="no per-subtask columns"):
        rio.subtasks_table(summary, "test/rel_error")


def test_make_tables_writes_every_metric_and_the_paper_tables_without_runs(runs_dir, tmp_path):
    """No --metric: the tables of every test metric present (here rel_error only); the paper's tables are written
    with the paper's numbers and empty cells although no commonsense or few-shot run exists."""
    out = tmp_path / "results"
    runs = rio.collect(runs_dir)
    rio.write_csv(runs[runs["task"] == "synthetic_fullrank"], out / "summary.csv")
    assert _load_script("make_tables").main(["--results-dir", str(out)]) == 0
    assert sorted(p.name for p in (out / "tables").iterdir()) == [
        "fig3_clip.md", "fig3_clip.tex", "points_test_rel_error.md", "points_test_rel_error.tex",
        "summary_test_rel_error.md", "summary_test_rel_error.tex", "table1_commonsense.md", "table1_commonsense.tex"]
    assert "RandLoRA r2 | 420 |" in (out / "tables" / "points_test_rel_error.md").read_text()
    table1 = (out / "tables" / "table1_commonsense.md").read_text()
    assert "(paper " in table1 and "— (paper" in table1  # the paper's numbers, our cells empty


def test_latex_escape():
    assert rio.latex_escape("50% a_b & c — 1 ± 2") == r"50\% a\_b \& c --- 1 $\pm$ 2"


def test_network_and_train_set_labels():
    assert rio.network_label("clip_vit_b32") == "ViT-B/32"
    assert rio.network_label("open_clip-ViT-H-14") == "ViT-H/14"
    assert rio.network_label("dinov2_vitl14") == "DINOv2 ViT-L/14"
    assert rio.network_label("qwen2_0_5b") == "Qwen2-0.5B"
    assert rio.network_label("meta-llama/Meta-Llama-3-8B") == "LLaMA3-8B"
    assert rio.network_label("mystery", {"mystery": "Phi3-3B"}) == "Phi3-3B"
    assert rio.network_label("minilm") == "minilm"
    assert rio.train_set_label("data/commonsense_170k.json") == "170k"


def test_reference_csvs_hold_the_paper_numbers():
    table1 = rio.read_reference(EXPERIMENTS / "table1_commonsense" / "reference.csv")
    assert len(table1[table1["metric"] == "avg_acc"]) == 6 * 7
    fig3 = rio.read_reference(EXPERIMENTS / "fig3_clip" / "reference.csv")
    assert len(fig3[(fig3["network"] == "ViT-B/32") & (fig3["metric"] == "acc")]) == 30
    assert len(fig3[fig3["metric"] == "peak_memory"]) == 15
    peft = rio.read_reference(EXPERIMENTS / "peft_benchmark.csv")
    assert set(peft["adapter"]) == {"lora", "randlora", "vera"}


# ------------------------------------------------------------------------------------------- figures

def _assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_make_figures_functions(runs, tmp_path):
    figures = _load_script("make_figures")
    summary = rio.summarise(runs)
    written, skipped = figures.make_figures(summary, "test/acc", tmp_path / "fig")
    names = {p.name for p in written}
    assert {"params_vs_test_acc.png", "params_vs_test_acc.pdf", "test_acc_vs_regime.png", "peak_memory.png",
            "rank_lr_ratio_test_acc.png"} <= names
    assert skipped == {}
    for path in written:
        if path.suffix == ".png":
            _assert_png(path)
        else:
            assert path.read_bytes()[:5] == b"%PDF-"


def test_make_figures_error_metric_and_skips_absent_data(runs, tmp_path):
    figures = _load_script("make_figures")
    synthetic = rio.summarise(runs[runs["task"] == "synthetic_fullrank"])
    written, skipped = figures.make_figures(synthetic, "test/rel_error", tmp_path / "fig", formats=["png"])
    assert [p.name for p in written] == ["params_vs_test_rel_error.png", "peak_memory.png"]
    assert "few-shot regimes" in skipped["regime"] and "LoRA+ sweep" in skipped["heatmap"]
    assert rio.metric_label("test/rel_error") == "test rel_error (lower is better)"
    _, skipped = figures.make_figures(synthetic, "test/acc", tmp_path / "fig2", formats=["png"])
    assert "no completed run has metric 'test/acc'" in skipped["params"]
    # on every run: panels without the metric still get their memory bars
    written, _ = figures.make_figures(rio.summarise(runs), "test/rel_error", tmp_path / "fig3", ["memory"], ["png"])
    _assert_png(written[0])


def test_pipeline_as_functions(runs_dir, tmp_path):
    out = tmp_path / "results"
    assert _load_script("aggregate").main([str(runs_dir), "--out-dir", str(out)]) == 0
    assert _load_script("make_tables").main(["--results-dir", str(out)]) == 0
    assert _load_script("make_figures").main(["--results-dir", str(out), "--only", "params",
                                              "--formats", "png"]) == 0
    table1 = (out / "tables" / "table1_commonsense.md").read_text()
    assert "84.0 ± 1.4 (paper 84.4)" in table1 and "— (paper 85.6)" in table1
    assert (out / "tables" / "summary_test_acc.md").is_file()
    _assert_png(out / "figures" / "params_vs_test_acc.png")


# ------------------------------------------------------------------------------------------- commands

def _run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_pipeline_as_commands(runs_dir, tmp_path):
    out = tmp_path / "results"
    grid = tmp_path / "expected.csv"
    grid.write_text("task,adapter,rank\ntweets,nola,8\ntweets,lora,8\n")
    done = _run("scripts/aggregate.py", str(runs_dir), "--out-dir", str(out), "--expected", str(grid))
    assert "67 ok, 3 failed, 0 interrupted, 0 duplicate, 1 corrupt, 1 incomplete" in done.stdout
    assert "loss is NaN at step 12" in done.stdout and "[corrupt]" in done.stdout
    assert "1 expected ones missing" in done.stdout and "'adapter': 'nola'" in done.stdout
    assert len(pd.read_csv(out / "summary.csv")) == 72
    means = pd.read_csv(out / "summary_mean.csv")
    assert "missing" in set(means["status"]) and "test/acc:mean" in means.columns

    done = _run("scripts/make_tables.py", "--results-dir", str(out), "--out-dir", str(tmp_path / "tables"))
    assert "table1_commonsense: 4 of 42 cells have our runs" in done.stdout
    fig3 = (tmp_path / "tables" / "fig3_clip.md").read_text()
    assert "62.5 ± 0.5 (paper 62.5)" in fig3 and "— (paper 58.4)" in fig3
    assert r"(paper 62.5)" in (tmp_path / "tables" / "fig3_clip.tex").read_text()

    done = _run("scripts/make_figures.py", "--results-dir", str(out), "--out-dir", str(tmp_path / "figs"),
                "--only", "memory", "--formats", "png")
    _assert_png(tmp_path / "figs" / "peak_memory.png")


def test_commands_fail_clearly_on_missing_input(tmp_path):
    done = subprocess.run([sys.executable, "scripts/make_tables.py", "--results-dir", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "run `python scripts/aggregate.py` first" in done.stderr
    done = subprocess.run([sys.executable, "scripts/aggregate.py", str(tmp_path / "none")], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "does not exist" in done.stderr
