"""A finished run, rebuilt from its folder for analysis: the model it trained, its ΔW, its data.

`load_run(run_dir)` reads the run's `result.json` (an `ok` run with its resolved config), rebuilds the backbone
from that config (seeded as in training), loads `adapter.safetensors` (for full fine-tuning: every trained
tensor; for an adapter: its trainable tensors, random bases regenerated and checked), takes ΔW per adapted layer
(`weights.delta_weights`), folds the adapter into the weights and moves the result onto a *plain* backbone (no
adapter modules), whose parameters are those of the pretrained model with W0 + ΔW in the adapted layers and the
run's trained head. Analyses then edit or combine weights of plain backbones that all share parameter names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from randlora.run.results import ADAPTER_FILE, read_finished_result

from .weights import adapted_layer_names, delta_weights, has_adapter, initial_weights

_ADAPTER_TENSOR = re.compile(r"(^|\.)(lora_A|lora_B|vera_lambda_b|vera_lambda_d|nola_alpha|nola_beta|"
                             r"randlora_lambda|randlora_gamma)$|(^|\.)bases\.")


def plain_name(name: str) -> str:
    """A state-dict key of an adapted model as the unadapted model names it."""
    name = name.replace(".base_layer.", ".")
    return re.sub(r"\.parametrizations\.(\w+)\.original$", r".\1", name)


@dataclass
class LoadedRun:
    """One run rebuilt for analysis (see the module docstring)."""

    path: Path
    result: dict
    cfg: DictConfig
    model: nn.Module                     # plain backbone with the run's weights, eval mode, on the CPU
    initial: dict[str, torch.Tensor]     # W0 (d_out × d_in) per adapted layer
    deltas: dict[str, torch.Tensor]      # ΔW (d_out × d_in, exact for adapters) per adapted layer
    label: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.cfg.adapter.name)

    @property
    def rank(self) -> int | None:
        return None if self.method == "full" else self.cfg.adapter.get("rank")

    @property
    def is_full(self) -> bool:
        return self.method == "full"


def read_run_result(run_dir: str | Path) -> dict:
    """The `result.json` of a finished run that also kept its trained tensors, or one line saying what is wrong."""
    result = read_finished_result(run_dir)
    if not (Path(run_dir) / ADAPTER_FILE).is_file():
        raise FileNotFoundError(f"{run_dir}: no {ADAPTER_FILE}; the analyses need the trained tensors")
    return result


def run_label(cfg: DictConfig) -> str:
    """`FT`, `LoRA r4`, `RandLoRA r35`, ...: how figures name a run."""
    names = {"full": "FT", "lora": "LoRA", "loraplus": "LoRA+", "vera": "VeRA", "nola": "NoLA", "randlora": "RandLoRA"}
    name = str(cfg.adapter.name)
    label = names.get(name, name)
    return label if name == "full" else f"{label} r{cfg.adapter.get('rank')}"


def build_plain_backbone(cfg: DictConfig) -> nn.Module:
    """The run's backbone as built before training (pretrained weights, head drawn from the run's seed)."""
    import lightning.pytorch as pl

    from randlora.backbones import build_backbone
    from randlora.data import task_info

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    return build_backbone(cfg.backbone, task_info(cfg.task))


@torch.no_grad()
def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild the run in `run_dir` (see the module docstring)."""
    from randlora.adapters import load_adapter, merge

    run_dir = Path(run_dir)
    result = read_run_result(run_dir)
    cfg = OmegaConf.create(result["config"])
    trained = build_plain_backbone(cfg)
    before = initial_weights(trained)  # W0 of the default target layers: the fine-tuned layers under FT
    load_adapter(trained, run_dir / ADAPTER_FILE)
    initial = initial_weights(trained) if has_adapter(trained) else before
    deltas = delta_weights(trained, initial)
    merge(trained)
    state = {plain_name(k): v for k, v in trained.state_dict().items() if not _ADAPTER_TENSOR.search(k)}
    model = build_plain_backbone(cfg)
    model.load_state_dict(state, strict=True)
    model.eval()
    if adapted_layer_names(model) != list(deltas):
        raise ValueError(f"{run_dir}: the adapted layers {list(deltas)[:3]}… are not the backbone's default "
                         "targets; the analyses compare layers by the default target preset")
    return LoadedRun(run_dir, result, cfg, model, initial, deltas, run_label(cfg))


def load_runs(run_dirs: list[str | Path], verify: bool = True) -> list[LoadedRun]:
    """Load several runs; the first full fine-tuning run is moved to the front (the reference of every analysis).

    All runs must be of the same backbone and task (their data and layers are compared one to one). With
    `verify`, each rebuilt run must score on its test split what it recorded (`verify_against_record`).
    """
    from .evaluate import verify_against_record
    from .output import progress

    runs = [load_run(d) for d in run_dirs]
    if verify:
        for run in runs:
            scores = verify_against_record(run)
            described = ", ".join(f"{name} {value:.4f}" for name, value in scores.items())
            progress(f"loaded {run.label} from {run.path}: test {described}, as recorded")
    first = runs[0].cfg
    for run in runs[1:]:
        for key in ("backbone", "task"):
            if OmegaConf.to_container(run.cfg[key]) != OmegaConf.to_container(first[key]):
                raise ValueError(f"{run.path}: {key} config differs from {runs[0].path}'s; "
                                 "analyse runs of one backbone and task together")
    labels = [r.label for r in runs]
    for run in runs:  # two runs of one configuration (e.g. seeds) keep apart in tables and legends
        if labels.count(run.label) > 1:
            run.label = f"{run.label} (seed {run.cfg.seed}, {run.path.name})"
    full = [r for r in runs if r.is_full]
    return full[:1] + [r for r in runs if r is not (full[0] if full else None)]
