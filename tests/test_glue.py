"""GLUE: metrics against hand-computed values, data in nyu-mll/glue's parquet layout, 2 training steps on a tiny
RoBERTa for a sentence-pair classification task (MRPC: accuracy and F1) and the regression task (STS-B)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers_training import training_config
from randlora.data import glue
from randlora.train import train


def test_accuracy_f1_and_matthews_by_hand():
    # predictions vs labels: tp = 2 (0, 4), fp = 1 (1), tn = 1 (2), fn = 1 (3)
    predictions, labels = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]
    expected = {"acc": 3 / 5, "f1": 2 * 2 / (2 * 2 + 1 + 1)}  # F1 = 2tp / (2tp + fp + fn)
    assert glue.glue_metrics("mrpc", predictions, labels) == pytest.approx(expected)
    # Matthews: (tp·tn - fp·fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (2 - 1) / sqrt(3·3·2·2) = 1/6
    assert glue.glue_metrics("cola", predictions, labels)["matthews"] == pytest.approx(1 / 6)
    assert glue.glue_metrics("cola", [1, 1, 1], [1, 0, 1])["matthews"] == 0.0  # a constant prediction
    assert glue.glue_metrics("sst2", [0, 1], [0, 1]) == {"acc": 1.0}


def test_pearson_and_spearman_by_hand():
    # x - 2.5 = (-1.5, -.5, .5, 1.5), y - 5 = (-3, -1, 0, 4): r = 11 / sqrt(5 · 26)
    scores = glue.glue_metrics("stsb", [1, 2, 3, 4], [2, 4, 5, 9])
    assert scores["pearson"] == pytest.approx(11 / (5 * 26) ** 0.5)
    assert scores["spearman"] == pytest.approx(1.0)  # same order
    # ties share their mean rank: ranks (1, 2.5, 2.5, 4) vs (1, 3, 2, 4) -> 4.5 / sqrt(4.5 · 5)
    tied = glue.glue_metrics("stsb", [1, 2, 2, 3], [1, 3, 2, 4])
    assert tied["spearman"] == pytest.approx(4.5 / (4.5 * 5) ** 0.5)
    assert tied["combined"] == pytest.approx((tied["pearson"] + tied["spearman"]) / 2)


SENTENCES = ["the cat sat on the mat", "a cat was sitting on a mat", "stocks fell sharply today", "it rained",
             "markets dropped steeply", "the weather was wet", "he plays the piano", "she reads a book"]


def write_glue(root: Path, task: str, n_train: int = 12, n_val: int = 6) -> Path:
    """``<root>/<task>/{train,validation}-00000-of-00001.parquet`` with nyu-mll/glue's columns."""
    spec = glue.get_task(task)
    for split, n in (("train", n_train), ("validation", n_val)):
        rows = {"idx": list(range(n))}
        for k, column in enumerate(spec.columns):
            rows[column] = [SENTENCES[(i + 3 * k) % len(SENTENCES)] for i in range(n)]
        rows["label"] = [float(i % 5) for i in range(n)] if spec.num_labels == 1 else [i % 2 for i in range(n)]
        (root / task).mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(root / task / f"{split}-00000-of-00001.parquet", index=False)
    return root


def test_glue_splits_are_read_from_the_hub_layout_with_datasets(tmp_path):
    splits = glue.load_splits("mrpc", root=str(write_glue(tmp_path, "mrpc")))
    assert len(splits["train"]) == 12 and len(splits["validation"]) == 6
    assert splits["train"][0] == (("the cat sat on the mat", "it rained"), 0)
    assert glue.load_splits("stsb", root=str(write_glue(tmp_path, "stsb")))["train"][3][1] == 3.0
    with pytest.raises(FileNotFoundError, match="cola/train-\\*.parquet"):
        glue.load_splits("cola", root=str(tmp_path))
    with pytest.raises(ValueError, match="task.dataset='mnli' is not a GLUE task here"):
        glue.get_task("mnli")


def test_mrpc_trains_two_steps_and_reports_accuracy_and_f1(tmp_path):
    root = write_glue(tmp_path / "glue", "mrpc")
    cfg = training_config(tmp_path, ["experiment=glue/randlora", "backbone=tiny_roberta", "task.dataset=mrpc",
                                     f"task.root={root}", "adapter.rank=8", "seed=2"])
    result = train(cfg)
    assert result["status"] == "ok" and result["subtask"] == "mrpc"
    assert set(result["metrics"]) >= {"test/acc", "test/f1", "val/acc_final"}
    assert result["config"]["optim"]["warmup_ratio"] == 0.06 and result["alpha"] == 128
    assert result["seed"] == 2 and result["basis_seed"] == 23  # int(exp(2) · 3.1415), recorded with the run


def test_authors_basis_seed_is_their_float32_formula_of_the_run_seed():
    from randlora.utils.config import authors_basis_seed

    # run_glue.py / gpt2_ft.py: int(torch.exp(torch.tensor(seed)) * 3.1415); e^1 · 3.1415 = 8.539…, e^5 · 3.1415 = 466.2…
    assert [authors_basis_seed(s) for s in range(6)] == [3, 8, 23, 63, 171, 466]
    with pytest.raises(ValueError, match="seed=43: .*set adapter.basis_seed explicitly"):
        authors_basis_seed(43)


@pytest.mark.parametrize("adapter", ["randlora", "vera"])
def test_glue_draws_a_new_basis_for_every_run_seed_as_the_authors_did(adapter):
    from randlora.adapters import inject
    from randlora.adapters.inject import basis_checksum
    from randlora.backbones import build_backbone
    from randlora.train import adapter_settings
    from randlora.utils.config import compose_config

    checksums = []
    for seed in (1, 2):
        cfg = compose_config([f"experiment=glue/{adapter}", "backbone=tiny_roberta", "task.dataset=mrpc",
                              f"seed={seed}", "adapter.rank=8"])
        assert cfg.adapter.basis_seed == [8, 23][seed - 1]  # not 0 for every seed
        model = build_backbone(cfg.backbone, {"num_classes": 2})
        inject(model, adapter_settings(cfg.adapter, model))
        checksums.append(basis_checksum(model))
    assert checksums[0] != checksums[1]
    assert compose_config([f"experiment=glue/{adapter}", "task.dataset=mrpc", "seed=1",
                           "adapter.basis_seed=0"]).adapter.basis_seed == 0  # still settable


def test_glue_optimizer_is_run_glue_pys_transformers_adamw():
    from randlora.optim import build_optimizer
    from randlora.utils.config import compose_config

    cfg = compose_config(["experiment=glue/lora", "task.dataset=rte"])
    # transformers.AdamW(params, lr): betas (0.9, 0.999), eps 1e-6, no weight decay; 6 % linear warm-up
    assert cfg.optim.eps == 1e-6 and cfg.optim.weight_decay == 0.0 and cfg.optim.warmup_ratio == 0.06
    import torch

    model = torch.nn.Linear(2, 2)
    assert build_optimizer(model, dict(cfg.optim)).defaults["eps"] == 1e-6


def test_glue_randlora_scales_like_the_authors_vendored_peft():
    """GLUE/peft is their commonsense PEFT: s = α/(r·√n) with α = 2r, λ = 0, γ = 1/min_dim (c7a6515)."""
    from randlora.adapters import AdapterConfig
    from randlora.adapters.randlora import RandLoRA
    from randlora.utils.config import compose_config

    cfg = compose_config(["experiment=glue/randlora", "backbone=roberta_base", "task.dataset=mrpc"])
    assert (cfg.adapter.rank, cfg.adapter.alpha, cfg.adapter.scaling) == (64, 128, "authors_llm")
    fields = {k: v for k, v in dict(cfg.adapter).items() if k != "basis_seed"}
    layer = RandLoRA(768, 768, AdapterConfig.from_any({**fields, "targets": ["query"]}), None, None, device="meta")
    assert layer.num_bases == 12 and layer.scale == pytest.approx(128 / (64 * 12 ** 0.5))  # n = ⌈768/64⌉


def test_stsb_trains_as_regression_and_reports_correlations(tmp_path):
    root = write_glue(tmp_path / "glue", "stsb")
    cfg = training_config(tmp_path, ["experiment=glue/lora", "backbone=tiny_roberta", "task.dataset=stsb",
                                     f"task.root={root}"])
    result = train(cfg)
    assert result["status"] == "ok"
    assert set(result["metrics"]) >= {"test/pearson", "test/spearman", "test/combined"}
    assert -1.0 <= result["metrics"]["test/pearson"] <= 1.0


def test_roberta_targets_are_the_encoders_dense_layers_not_the_head():
    from randlora.backbones import build_backbone

    model = build_backbone({"family": "hf_seqcls", "name": "tiny_roberta"}, {"num_classes": 2})
    targets = model.target_presets["roberta"]
    assert len(targets) == 2 * 6 and all(".encoder.layer." in t for t in targets)  # q, k, v + 3 dense per layer
    assert model.head_prefixes == ["model.classifier"]


def test_glue_command_lists_the_authors_cells():
    from randlora.experiments import experiment_cells

    cells = experiment_cells("glue")
    expected = {f"experiment=glue/{adapter} backbone={net} task.dataset={task} seed={seed}"
                for net in ("roberta_base", "roberta_large") for adapter in ("lora", "randlora", "vera")
                for task in ("sst2", "mrpc", "cola", "qnli", "rte", "stsb") for seed in range(1, 6)}
    assert {" ".join(c.overrides) for c in cells} == expected and len(cells) == 180
    ranks = {(k["backbone"], k["adapter"]): k["rank"] for k in (c.key_dict for c in cells)}
    assert ranks == {("roberta_base", "lora"): "4", ("roberta_large", "lora"): "4", ("roberta_base", "vera"): "256",
                     ("roberta_large", "vera"): "256", ("roberta_base", "randlora"): "64",
                     ("roberta_large", "randlora"): "100"}  # GLUE/train_all.sh


def test_glue_table_shows_each_tasks_reported_metric(tmp_path):
    from randlora import reporting
    from test_reporting import write_result

    for seed, (acc, matthews) in enumerate([(0.90, 0.60), (0.92, 0.62)]):
        for task, metrics in (("mrpc", {"test/acc": acc, "test/f1": acc}), ("cola", {"test/acc": acc,
                                                                                      "test/matthews": matthews})):
            write_result(tmp_path, f"{task}-s{seed}", task="glue", backbone="roberta_base", adapter="lora", rank=4,
                         seed=seed + 1, metrics=metrics, task_cfg={"dataset": task})
    from randlora.reporting.glue import glue_table

    table = reporting.to_markdown(glue_table(reporting.summarise(reporting.collect(tmp_path))))
    assert "| roberta_base | LoRA r4 | — | 91.0 ± 1.4 | 61.0 ± 1.4 | — | — | — | — |" in table


@pytest.mark.slow
def test_glue_command_runs_a_reduced_grid_end_to_end_offline(tmp_path):
    import subprocess

    root = write_glue(tmp_path / "glue", "mrpc")
    write_glue(root, "stsb")
    repo = Path(__file__).resolve().parents[1]
    command = ["bash", str(repo / "experiments" / "glue" / "run.sh"), "--set", "backbone=tiny_roberta",
               "--set", "adapter=lora", "--set", "dataset=mrpc,stsb", "--set", "seed=1",
               "--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "out"), "--include-debug", "--",
               "debug=fast", f"task.root={root}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    table = (tmp_path / "out" / "tables" / "glue.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| tiny_roberta | LoRA r4 |"))
    assert row.count("(n=1)") == 2  # mrpc and stsb
