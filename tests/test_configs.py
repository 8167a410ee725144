"""The Hydra configs: every backbone x adapter x task composes and validates; groups, launchers, sweeps,
learning-rate rules, run folders, and the validation table."""
from __future__ import annotations

import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from randlora.adapters import AdapterConfig
from randlora.backbones import BACKBONES, BackboneConfig
from randlora.utils.config import CONFIGS_DIR, REPO_ROOT, compose_config, register_resolvers
from randlora.utils.validate import ConfigError, validate_config
from randlora.zero_shot import ZERO_SHOT_FAMILIES

ADAPTERS = sorted(p.stem for p in (CONFIGS_DIR / "adapter").glob("*.yaml"))
BACKBONE_NAMES = sorted(p.stem for p in (CONFIGS_DIR / "backbone").glob("*.yaml"))
TASKS = sorted(p.stem for p in (CONFIGS_DIR / "task").glob("*.yaml"))


def test_groups_hold_the_required_options():
    assert set(ADAPTERS) >= {"full", "lora", "loraplus", "vera", "nola", "randlora", "randlora_sparse"}
    assert set(BACKBONE_NAMES) == set(BACKBONES)
    assert set(TASKS) >= {"tweets", "vtab", "fewshot", "commonsense"}
    for group, options in {"trainer": {"default", "cpu", "gpu", "ddp", "fsdp"},
                           "logger": {"csv", "wandb", "tensorboard", "many"}, "optim": {"adamw"},
                           "sweep": {"optuna"}, "debug": {"fast"}, "callbacks": {"default"}}.items():
        assert options <= {p.stem for p in (CONFIGS_DIR / group).glob("*.yaml")}, group


def test_every_backbone_adapter_task_combination_composes_and_validates():
    """Hydra composes each option of the three groups; every combination of them (the groups interact only
    through interpolations such as optim.lr -> adapter.name, task.base_lr) then validates and resolves completely."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS_DIR), version_base="1.3"):
        base = compose("train", overrides=["paths.output_dir=/tmp/x"])
        options = {group: {name: compose("train", overrides=[f"{group}={name}"])[group] for name in names}
                   for group, names in (("backbone", BACKBONE_NAMES), ("adapter", ADAPTERS), ("task", TASKS))}
    for backbone in options["backbone"].values():
        BackboneConfig.from_any(backbone)
    seen = 0
    shared = {key: base[key] for key in ("seed", "budget", "loader", "optim", "paths")}
    for backbone, adapter, task in product(*(options[g].values() for g in ("backbone", "adapter", "task"))):
        cfg = OmegaConf.create({**shared, "backbone": backbone, "adapter": adapter, "task": task})
        if adapter.name == "none" and backbone.family not in ZERO_SHOT_FAMILIES:  # a fresh head: refused
            with pytest.raises(ConfigError, match="adapter=none"):
                validate_config(cfg)
        else:
            validate_config(cfg)
        OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
        seen += 1
    assert seen == len(BACKBONE_NAMES) * len(ADAPTERS) * len(TASKS)


@pytest.mark.parametrize("adapter", [a for a in ADAPTERS if a != "none"])  # none = zero-shot, no adapter
def test_adapter_configs_are_accepted_by_the_adapter_library(adapter):
    cfg = compose_config([f"adapter={adapter}"])
    fields = OmegaConf.to_container(cfg.adapter, resolve=True)
    fields["targets"] = fields["targets"] if fields["targets"] is not None else ["query"]
    assert AdapterConfig.from_any(fields).name == cfg.adapter.name


def test_backbone_yaml_files_match_the_catalog():
    for name, spec in BACKBONES.items():
        assert yaml.safe_load((CONFIGS_DIR / "backbone" / f"{name}.yaml").read_text()) == spec, name


@pytest.mark.parametrize(("overrides", "lr"), [
    ([], 5e-4), (["task=fewshot"], 1e-3), (["task=vtab", "adapter=vera"], 1e-2), (["task=commonsense"], 1e-4),
    (["optim=adamw_llm"], 1e-4), (["optim=adamw_llm", "adapter=vera"], 1e-2),
    (["adapter=vera", "optim.lr=3e-3"], 3e-3), (["adapter=lora", "optim.lr=2e-4"], 2e-4),
    (["task.base_lr=2e-3"], 2e-3),
])
def test_learning_rate_follows_the_adapter_and_stays_overridable(overrides, lr):
    assert compose_config(overrides).optim.lr == pytest.approx(lr)


def test_each_setting_has_one_home():
    """The lr lives in optim.lr only and LoRA+'s ratio in adapter.lr_ratio only (no copies that can disagree)."""
    cfg = compose_config(["adapter=loraplus", "adapter.lr_ratio=4"])
    assert cfg.adapter.lr_ratio == 4 and "lr_ratio" not in cfg.optim
    assert "lr" not in cfg.adapter and "base_lr" not in cfg.optim
    assert compose_config(["adapter=lora"]).adapter.lr_ratio is None
    assert compose_config(["adapter=randlora_sparse"]).adapter.basis == "sparse"


def test_trainer_precision_is_32_on_cpu_and_bf16_on_gpu():
    assert str(compose_config(["trainer=cpu"]).trainer.precision) == "32"
    assert compose_config(["trainer=gpu"]).trainer.precision == "bf16-mixed"
    default = compose_config([]).trainer.precision
    import torch

    assert default == ("bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32")
    assert compose_config(["trainer=ddp"]).trainer.strategy == "ddp"
    assert compose_config(["trainer=fsdp"]).trainer.strategy.use_orig_params is True


def test_run_folder_is_task_backbone_adapter_and_unique_id():
    cfg = compose_config(["adapter=randlora_sparse", "backbone=tiny_bert"], return_hydra_config=True)
    run_dir = Path(cfg.hydra.run.dir)
    assert run_dir.parent == Path(cfg.paths.runs_dir) / "tweets" / "tiny_bert" / "randlora_sparse"
    date, time, job, token = run_dir.name.split("_")
    assert job == "0" and len(token) == 6 and date.count("-") == 2 and time.count("-") == 2
    assert cfg.hydra.sweep.dir == cfg.paths.runs_dir
    assert cfg.hydra.sweep.subdir.startswith("tweets/tiny_bert/randlora_sparse/")


@pytest.mark.parametrize("launcher", ["joblib", "submitit_slurm", "submitit_local", "slurm_gpu"])
def test_launchers_compose_by_name(launcher):
    cfg = compose_config([f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert "_target_" in cfg.hydra.launcher


def test_optuna_sweep_searches_rank_and_lr_for_val_acc():
    cfg = compose_config(["sweep=optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert "optuna" in sweeper._target_.lower() and sweeper.direction == "maximize"
    assert set(sweeper.params) == {"adapter.rank", "optim.lr"}  # keys every adapter has (lr_ratio: LoRA/LoRA+)
    assert cfg.optimized_metric == "val/acc"


@pytest.mark.parametrize("logger", ["csv", "tensorboard", "wandb", "many"])
def test_loggers_instantiate_offline(logger, tmp_path, monkeypatch):
    from randlora.utils.instantiate import instantiate_loggers

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_config([f"logger={logger}", f"paths.output_dir={tmp_path}"])
    loggers = instantiate_loggers(cfg.logger)
    assert len(loggers) == (3 if logger == "many" else 1)
    if logger in ("wandb", "many"):
        assert cfg.logger.wandb.offline is True


BAD_VALUES = [
    ("adapter.rank=0", "adapter.rank"), ("adapter.rank=2.5", "adapter.rank"), ("adapter.alpha=-1", "adapter.alpha"),
    ("adapter.dropout=1.0", "adapter.dropout"), ("adapter.basis=gaussian", "adapter.basis"),
    ("adapter.name=dora", "adapter.name"), ("optim.lr=0", "optim.lr"), ("optim.lr=-1e-3", "optim.lr"),
    ("optim.weight_decay=-0.1", "optim.weight_decay"), ("optim.schedule=step", "optim.schedule"),
    ("optim.betas=[0.9]", "optim.betas"), ("optim.accumulate_grad_batches=0", "optim.accumulate_grad_batches"),
    ("adapter=loraplus adapter.lr_ratio=-4", "adapter.lr_ratio"), ("loader.batch_size=0", "loader.batch_size"), ("seed=-1", "seed"),
    ("optim.warmup_steps=1.5", "optim.warmup_steps"), ("budget=0", "budget"),
]


@pytest.mark.parametrize(("override", "key"), BAD_VALUES)
def test_validation_names_the_key_the_value_and_what_is_allowed(override, key):
    cfg = compose_config(override.split())
    with pytest.raises(ConfigError, match=rf"^{key}=.* is invalid: allowed is "):
        validate_config(cfg)


def test_validation_reports_an_unresolvable_value():
    cfg = compose_config(["optim.lr=${adapter.missing_key}"])
    with pytest.raises(ConfigError, match="optim.lr could not be read"):
        validate_config(cfg)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd="/")


def test_help_lists_groups_and_cfg_job_prints_the_config():
    help_text = _cli("--help").stdout
    for group in ("adapter:", "backbone:", "task:", "optim:", "trainer:", "logger:", "sweep:", "debug:"):
        assert group in help_text
    job = yaml.safe_load(_cli("--cfg", "job").stdout)
    assert job["adapter"]["name"] == "randlora" and job["task"]["name"] == "tweets"
