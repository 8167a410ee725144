"""The paper's experiments as configs (``configs/experiment/``) and every backbone family x task end to end.

1. Each experiment config and per-adapter variant composes, validates and resolves to the paper's
   hyper-parameters (PAPER.md §4): vision recipe, CLIP ranks per backbone, Table 1's LLM recipe and budgets.
2. Every ``python train.py`` command in ``experiments/*/README.md`` composes (the base config Hydra composes
   for a ``-m`` sweep, and the sweep's first and last job) and names only known datasets.
3. ``train(cfg)`` runs 2 steps + evaluation offline for each family x task on the tiny stand-ins, starting
   from the experiment configs, with fixtures in the real on-disk formats (VTAB-1k lists, ImageFolder tree,
   LLM-Adapters JSON, tweet CSV), and writes an ok ``result.json`` with the expected metric keys.
"""
from __future__ import annotations

import functools
import itertools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from safetensors import safe_open

from helpers_data import (make_commonsense_records, make_commonsense_root, make_commonsense_train_file,
                          make_image_folder, make_vtab_tree, write_commonsense_file, write_tweets_csv)
from helpers_training import training_config
from randlora.adapters.config import PRESETS
from randlora.data import classnames, commonsense, fewshot, vtab
from randlora.reporting.paper import table1_budget
from randlora.train import train, trainer_overrides
from randlora.utils.config import CONFIGS_DIR, REPO_ROOT, compose_config
from randlora.utils.validate import check_libraries, validate_config

EXPERIMENT_DIR = CONFIGS_DIR / "experiment"
EXPERIMENTS = sorted(p.relative_to(EXPERIMENT_DIR).with_suffix("").as_posix() for p in EXPERIMENT_DIR.rglob("*.yaml"))
PAPER_EXPERIMENTS = ["table1_commonsense", "fig3_clip", "fig1_dinov2", "fig1_clip", "vtab"]
VARIANTS = {  # experiment -> its per-adapter variants (experiment=<experiment>/<variant>)
    "fig3_clip": ["full", "lora", "nola", "randlora", "vera"],
    "fig1_clip": ["lora", "randlora"],
    "fig1_dinov2": ["lora", "randlora"],
    "table1_commonsense": ["lora_efficient", "lora_large", "lora_performant", "nola", "randlora_efficient",
                           "randlora_large", "randlora_performant", "vera"],
}
VISION = [f"{e}/{v}" for e in ("fig3_clip", "fig1_clip", "fig1_dinov2") for v in VARIANTS[e]] + ["vtab"]
README_FOLDERS = ["table1_commonsense", "fig3_clip", "fig1_dinov2", "fig1_clip", "fig1_llama", "vtab"]
NO_OUTPUT_DIR = "paths.output_dir=/tmp/unused"  # ${hydra:runtime.output_dir} exists only inside a Hydra app


@functools.lru_cache(maxsize=None)
def composed(*overrides: str) -> DictConfig:
    """The train config composed with ``overrides`` (cached: composing takes ~0.2 s; callers must not mutate)."""
    return compose_config([NO_OUTPUT_DIR, *overrides])


def paper_lr(adapter: str, base: float) -> float:
    return 1e-2 if adapter == "vera" else base


# ------------------------------------------------------------------------------------ composition


def test_the_paper_experiments_and_their_adapter_variants_exist():
    assert set(PAPER_EXPERIMENTS) <= set(EXPERIMENTS)
    for experiment, variants in VARIANTS.items():
        assert sorted(n.split("/")[1] for n in EXPERIMENTS if n.startswith(f"{experiment}/")) == variants


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_validates_and_resolves(name):
    cfg = composed(f"experiment={name}")
    validate_config(cfg)
    check_libraries(cfg)  # the adapter and backbone libraries accept their nodes
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation (ranks looked up by backbone/budget) resolves
    if "/" in name:  # a variant is named after its adapter (and Table 1 budget)
        assert name.split("/")[1].split("_")[0] == cfg.adapter.name


@pytest.mark.parametrize("name", VISION)
def test_vision_experiments_use_the_papers_recipe(name, monkeypatch):
    cfg = composed(f"experiment={name}")
    assert cfg.optim.name == "adamw" and cfg.optim.lr == pytest.approx(paper_lr(cfg.adapter.name, 1e-3))
    assert (cfg.optim.weight_decay, cfg.optim.schedule, cfg.optim.grad_clip) == (0.1, "cosine", 1.0)
    assert cfg.trainer.gradient_clip_val == 1.0 and cfg.trainer.accumulate_grad_batches == 1
    assert cfg.loader.batch_size == 128
    assert str(cfg.trainer.precision) == "32"  # this machine has no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert cfg.trainer.precision == "bf16-mixed"  # resolved again: bf16 on a GPU
    if cfg.task.name == "fewshot":
        assert cfg.task.min_iterations == 10 and cfg.task.batch_size == 128 and cfg.task.val_per_class == 0
        assert cfg.trainer.max_epochs is None  # the paper's epochs, per dataset and regime


def test_null_max_epochs_gives_the_papers_few_shot_and_per_dataset_epochs():
    cfg = composed("experiment=fig3_clip/lora")
    epochs = {(name, shots): trainer_overrides(cfg, SimpleNamespace(extras={
        "paper_epochs": fewshot.paper_epochs(name, shots)}))["max_epochs"]
        for name, shots in (("cars", None), ("dtd", None), ("imagenet", None), ("cars", 1), ("imagenet", 16))}
    assert epochs == {("cars", None): 35, ("dtd", None): 76, ("imagenet", None): 10, ("cars", 1): 10,
                      ("imagenet", 16): 10}


@pytest.mark.parametrize(("variant", "backbone", "expected"), [
    ("randlora", "clip_vitb32", {"rank": 6, "scaling": "authors_clip", "num_bases_rule": "floor_plus_one"}),
    ("randlora", "clip_vitl14", {"rank": 8, "scaling": "authors_clip", "num_bases_rule": "floor_plus_one"}),
    ("randlora", "clip_vith14", {"rank": 10, "scaling": "authors_clip", "basis": "dense"}),
    ("vera", "clip_vitb32", {"rank": 256}), ("vera", "clip_vitl14", {"rank": 256}),
    ("vera", "clip_vith14", {"rank": 1024}),
    ("lora", "clip_vith14", {"rank": 32, "alpha": None}), ("nola", "clip_vitl14", {"rank": 1, "num_bases": 1024}),
])
def test_figure3_adapters_get_the_papers_rank_for_each_clip_backbone(variant, backbone, expected):
    cfg = composed(f"experiment=fig3_clip/{variant}", f"backbone={backbone}")
    assert {key: cfg.adapter[key] for key in expected} == expected
    assert cfg.adapter.targets is None  # the CLIP backbone's default preset, clip_all (both towers, in_proj too)


def test_figure3_and_figure1_regimes_and_rank_sweeps():
    fig3 = composed("experiment=fig3_clip/full")
    assert (fig3.backbone.name, fig3.task.shots, fig3.task.fraction) == ("ViT-B-32", None, None)
    assert "rank" not in fig3.adapter  # full fine-tuning records no rank
    for name, backbone in (("fig1_clip/randlora", "ViT-B-32"),
                           ("fig1_dinov2/randlora", "vit_base_patch14_dinov2.lvd142m")):
        cfg = composed(f"experiment={name}")
        assert (cfg.backbone.name, cfg.task.fraction, cfg.task.shots) == (backbone, 1.0, None)
        assert (cfg.adapter.scaling, cfg.adapter.num_bases_rule) == ("authors_clip", "floor_plus_one")
    assert composed("experiment=fig1_clip/randlora", "adapter.rank=64").adapter.rank == 64  # the sweep axis wins
    assert composed("experiment=fig1_dinov2/lora").adapter.rank == 32


def test_vtab_trains_on_train800val200_for_100_epochs_and_tests_the_final_adapter():
    cfg = composed("experiment=vtab")
    assert (cfg.task.name, cfg.task.use_val, cfg.trainer.max_epochs) == ("vtab", False, 100)
    assert cfg.backbone.name == "vit_base_patch14_dinov2.lvd142m" and cfg.callbacks.adapter_checkpoint is None


@pytest.mark.parametrize("variant", VARIANTS["table1_commonsense"])
def test_table1_uses_the_papers_llm_recipe(variant):
    cfg = composed(f"experiment=table1_commonsense/{variant}")
    assert cfg.optim.lr == pytest.approx(paper_lr(cfg.adapter.name, 1e-4))
    assert (cfg.optim.weight_decay, cfg.optim.warmup_steps) == (0.0, 100)
    assert cfg.loader.batch_size * cfg.optim.accumulate_grad_batches == 16
    assert cfg.task.cutoff_len == 256 and cfg.backbone.max_length == 256 and cfg.trainer.max_epochs == 1
    assert cfg.adapter.dropout == 0.05 and cfg.adapter.targets is None  # the backbones' `llm` preset
    assert PRESETS["llm"] == ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]
    if cfg.adapter.name in ("lora", "randlora"):
        assert cfg.adapter.alpha is None  # the library's default: α = 2r (LoRA and authors_llm alike)
    if cfg.adapter.name == "randlora":
        assert (cfg.adapter.scaling, cfg.adapter.basis) == ("authors_llm", "dense")


def test_table1_training_file_follows_the_training_set():
    for train_set in ("15k", "170k"):
        path = composed("experiment=table1_commonsense/vera", f"task.train_set={train_set}").task.train_path
        assert path.endswith(f"commonsense/commonsense_{train_set}.json")


@pytest.mark.parametrize(("budget", "lora_rank", "randlora_rank"),
                         [("efficient", 16, 60), ("performant", 32, 30), ("large", 64, 15)])
def test_table1_budgets_use_the_papers_ranks_and_land_in_the_right_columns(budget, lora_rank, randlora_rank):
    for adapter, rank in (("lora", lora_rank), ("randlora", randlora_rank)):
        cfg = composed(f"experiment=table1_commonsense/{adapter}_{budget}")
        assert (cfg.adapter.name, cfg.adapter.rank, cfg.budget) == (adapter, rank, None)
        column = None if budget == "large" else budget  # 112M is a Figure 1 point, not a Table 1 column
        assert table1_budget(cfg.adapter.name, cfg.adapter.rank, cfg.budget) == column


# ------------------------------------------------------------------------------- README commands


def readme_commands(readme: Path) -> list[list[str]]:
    """The arguments of each ``python train.py`` command in the README's bash blocks, after substituting the
    block's ``NAME=value`` shell variables (continuation lines joined)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme.read_text(encoding="utf-8"), flags=re.S):
        variables: dict[str, str] = {}
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(\S+)", line):
                variables[match[1]] = match[2]
            elif line.startswith("python train.py"):
                line = re.sub(r"\$\{?([A-Z][A-Z0-9_]*)\}?", lambda m: variables[m[1]], line)
                commands.append([a for a in shlex.split(line)[2:] if a != "-m"])
    return commands


def sweep_jobs(arguments: list[str]) -> list[list[str]]:
    """The first and the last job of the sweep the overrides describe (Hydra's own parser expands the lists)."""
    overrides = OverridesParser.create().parse_overrides(arguments)
    choices = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
               else [o.input_line] for o in overrides]
    return [[c[0] for c in choices], [c[-1] for c in choices]]


def dataset_values(arguments: list[str]) -> list[str]:
    values = [a.split("=", 1)[1].split(",") for a in arguments if a.startswith("task.dataset=")]
    return list(itertools.chain(*values))


def sweep_base(arguments: list[str]) -> list[str]:
    """The overrides Hydra composes a multirun's base config with: the non-sweep ones. Keys they set (e.g.
    ``task.fraction=1.0``) must exist without the swept options, hence ``task=fewshot`` beside a swept
    ``experiment=a,b``."""
    return [o.input_line for o in OverridesParser.create().parse_overrides(arguments) if not o.is_sweep_override()]


@pytest.mark.parametrize("folder", README_FOLDERS)
def test_readme_commands_compose_and_name_known_datasets(folder):
    commands = readme_commands(REPO_ROOT / "experiments" / folder / "README.md")
    assert commands, f"experiments/{folder}/README.md has no `python train.py` command"
    for arguments in commands:
        assert any(a.startswith("experiment=") for a in arguments), arguments
        composed(*sweep_base(arguments))  # what `-m` composes first; fails on a key the base config lacks
        for job in sweep_jobs(arguments):
            cfg = composed(*job)
            validate_config(cfg)
            check_libraries(cfg)
            if cfg.task.name in ("fewshot", "vtab"):
                known = fewshot.DATASETS if cfg.task.name == "fewshot" else vtab.TASKS
                names = dataset_values(arguments)
                assert names and set(names) <= set(known), set(names) - set(known)


def test_readme_dataset_lists_are_the_papers():
    def datasets(folder: str) -> list[str]:
        return dataset_values(readme_commands(REPO_ROOT / "experiments" / folder / "README.md")[0])

    assert sorted(datasets("fig3_clip")) == sorted(fewshot.DATASETS)  # the 22 datasets of Figure 3
    for folder in ("fig1_clip", "fig1_dinov2"):  # "21 datasets": Figure 3's without ImageNet
        assert sorted(datasets(folder)) == sorted(set(fewshot.DATASETS) - {"imagenet"})
    assert sorted(datasets("vtab")) == sorted(vtab.TASKS)


# ------------------------------------------------------------------------ family x task end to end


def run(tmp_path: Path, overrides: list[str]) -> dict:
    """``train`` with ``debug=fast`` (2 training steps, 2 eval batches, CPU); checks and returns result.json."""
    result = train(training_config(tmp_path, overrides))
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["status"] == "ok" and saved["error"] is None
    assert {"test/acc", "val/acc_best", "val/acc_final"} <= set(saved["metrics"])
    assert all(0.0 <= v <= 1.0 for v in saved["metrics"].values())
    assert 0 < saved["params"]["trainable"] < saved["params"]["total"]
    assert (tmp_path / "run" / "adapter.safetensors").is_file()
    return saved


def adapter_tensors(tmp_path: Path) -> dict[str, torch.Tensor]:
    with safe_open(tmp_path / "run" / "adapter.safetensors", "pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}


def test_tiny_vit_on_vtab_1k(tmp_path):
    make_vtab_tree(tmp_path / "data" / "vtab-1k", "eurosat", n_train=8, n_val=4, n_test=6)  # the config's root
    saved = run(tmp_path, ["experiment=vtab", "backbone=tiny_vit", "task.dataset=eurosat", "adapter=lora",
                           "adapter.rank=4"])
    assert (saved["task"], saved["subtask"], saved["adapter"]) == ("vtab", "eurosat", "lora")
    # one task per run; the suite's group means come from the per-task results
    assert vtab.group_means({saved["subtask"]: saved["metrics"]["test/acc"]}) == {
        "specialized": saved["metrics"]["test/acc"], "overall": saved["metrics"]["test/acc"]}


def test_tiny_vit_on_fewshot_with_the_dinov2_randlora_settings(tmp_path):
    make_image_folder(tmp_path / "data" / "fewshot", "dtd")  # the config's root: <paths.data_dir>/fewshot
    saved = run(tmp_path, ["experiment=fig1_dinov2/randlora", "backbone=tiny_vit", "task.dataset=dtd"])
    assert (saved["task"], saved["subtask"], saved["adapter"], saved["rank"]) == ("fewshot", "dtd", "randlora", 6)
    assert saved["config"]["adapter"]["scaling"] == "authors_clip" and saved["basis_checksum"].startswith("sha256:")
    assert any(k.startswith("head") for k in adapter_tensors(tmp_path))  # the fresh linear head is trained and saved


def test_tiny_clip_on_fewshot_adapts_both_towers_including_in_proj(tmp_path):
    make_image_folder(tmp_path / "data" / "fewshot", "eurosat", classes=classnames.class_folders("eurosat"))
    saved = run(tmp_path, ["experiment=fig3_clip/randlora", "backbone=tiny_clip", "task.dataset=eurosat",
                           "task.shots=2"])
    assert (saved["subtask"], saved["adapter"], saved["rank"]) == ("eurosat", "randlora", 6)
    tensors = adapter_tensors(tmp_path)
    in_proj = {k: v for k, v in tensors.items() if "attn" in k and "in_proj" in k and k.endswith("randlora_gamma")}
    towers = {k.split(".transformer.")[0] for k in in_proj}
    assert towers == {"clip", "clip.visual"}  # text and image towers
    # authors_clip starts from γ = 0: a non-zero γ after 2 steps means q/k/v received gradients
    assert all(v.abs().sum() > 0 for v in in_proj.values())


def test_tiny_llama_on_commonsense_scores_every_task_by_generation(tmp_path):
    data = tmp_path / "data" / "commonsense"  # the config's train_path (train_set 15k) and test_root
    make_commonsense_train_file(data / "commonsense_15k.json", per_task=3)
    make_commonsense_root(data, n=2)
    saved = run(tmp_path, ["experiment=table1_commonsense/randlora_efficient", "backbone=tiny_llama",
                           "task.val_size=4", "task.max_new_tokens=4", "task.val_generate=true",  # val/acc too
                           "trainer.val_check_interval=null", "trainer.check_val_every_n_epoch=1",
                           "adapter.rank=6"])  # the paper's r=60 is wider than tiny_llama's 32 (refused as such)
    assert (saved["task"], saved["adapter"], saved["rank"]) == ("commonsense", "randlora", 6)
    per_task = {k.removeprefix("test/acc/"): v for k, v in saved["metrics"].items() if k.startswith("test/acc/")}
    assert set(per_task) == set(commonsense.TASKS)  # boolq, piqa, social_i_qa, ..., openbookqa
    assert saved["metrics"]["test/acc"] == pytest.approx(sum(per_task.values()) / len(per_task))


def test_offline_commonsense_mixes_the_training_files_and_saves_every_generation(tmp_path):
    """experiment=offline_commonsense on fixtures in the shared layout: <root>/<task>.test.json and
    <root>/train/<task>.train.json; seeded subsets; per-task generations beside the run."""
    root = make_commonsense_root(tmp_path / "commonsense", n=5, layout="flat")
    for task in ("boolq", "ARC-Easy", "ARC-Challenge", "openbookqa"):
        write_commonsense_file(root / "train" / f"{task}.train.json", make_commonsense_records(task, 6))
    cfg = training_config(tmp_path, ["experiment=offline_commonsense", "backbone=tiny_llama", f"task.test_root={root}",
                                     "task.train_size=8", "task.max_eval_samples=3", "task.max_new_tokens=4",
                                     "adapter=lora", "adapter.rank=2"])
    assert cfg.task.train_path[1] == f"{root}/train/ARC-Easy.train.json"
    saved = train(cfg)
    assert saved["status"] == "ok" and "val/acc_best" not in saved["metrics"]  # no validation: one epoch
    tasks = ["boolq", "piqa", "social_i_qa", "winogrande", "ARC-Easy", "ARC-Challenge", "openbookqa"]
    for task in tasks:
        records = json.loads((tmp_path / "run" / "generations" / f"{task}.json").read_text())
        assert len(records) == 3 and set(records[0]) == {"prompt", "generation", "extracted", "answer", "correct"}
        assert saved["metrics"][f"test/acc/{task}"] == pytest.approx(sum(r["correct"] for r in records) / 3)
        share = sum(r["extracted"] is not None for r in records) / 3
        assert saved["metrics"][f"test/extracted/{task}"] == pytest.approx(share)
    assert saved["metrics"]["test/extracted"] == pytest.approx(
        sum(saved["metrics"][f"test/extracted/{t}"] for t in tasks) / len(tasks))


def test_tiny_bert_on_tweets(tmp_path):
    csv = write_tweets_csv(tmp_path / "tweets.csv", per_class=20)
    saved = run(tmp_path, ["experiment=quickstart", "backbone=tiny_bert", f"task.path={csv}", "task.train_size=30",
                           "task.val_size=12", "task.test_size=12"])
    assert (saved["task"], saved["adapter"]) == ("tweets", "randlora") and "test/majority_acc" in saved["metrics"]


@pytest.mark.slow
def test_a_multirun_over_experiment_variants_runs_each_adapter_with_its_settings(tmp_path):
    """``python train.py -m experiment=<a>,<b>``: the sweep axis of the README commands, in a real Hydra app."""
    make_image_folder(tmp_path / "data" / "fewshot", "eurosat", classes=classnames.class_folders("eurosat"))
    command = [sys.executable, str(REPO_ROOT / "train.py"), "-m", "task=fewshot",
               "experiment=fig3_clip/vera,fig3_clip/randlora", "backbone=tiny_clip", "task.dataset=eurosat",
               "task.shots=1", "debug=fast", f"paths.root_dir={tmp_path}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = tmp_path / "results" / "runs"
    results = {p.parent.parent.relative_to(runs).as_posix(): json.loads(p.read_text())
               for p in runs.rglob("result.json")}
    assert sorted(results) == ["fewshot-eurosat/tiny_clip/randlora", "fewshot-eurosat/tiny_clip/vera"]
    assert all(r["status"] == "ok" for r in results.values())
    randlora, vera = results["fewshot-eurosat/tiny_clip/randlora"], results["fewshot-eurosat/tiny_clip/vera"]
    assert (randlora["rank"], randlora["lr"], randlora["config"]["adapter"]["scaling"]) == (6, 1e-3, "authors_clip")
    assert (vera["rank"], vera["lr"]) == (256, 1e-2)
