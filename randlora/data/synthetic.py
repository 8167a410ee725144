"""`task=synthetic_fullrank`: recover a known weight perturbation of a frozen random network.

The backbone (`backbone=synthetic_mlp`) is f(x; W) with frozen random orthogonal W_l. The teacher is the same
network with every weight perturbed, W_l + ΔW_l, where ||ΔW_l||_F = `perturbation` · ||W_l||_F and

    target_rank: null   ΔW_l = c · Q_l, Q_l random orthogonal: full rank with a flat spectrum, so any rank-r
                        update can reach at most r/width of its energy;
    target_rank: k      ΔW_l = c · U_l V_lᵀ, U_l, V_l ∈ R^{width×k} with orthonormal columns: rank k.

Inputs x ~ N(0, I); targets y = f(x; W + ΔW). Adapters are trained with the mean squared error and scored by

    rel_error = E‖f_adapted(x) − y‖² / E‖f(x; W) − y‖²      (1 at the start, 0 when ΔW is recovered).

Task fields: target_rank=null, perturbation=0.5, target_seed=1, train_size=4096, val_size=512, test_size=1024,
data_seed=0.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import TensorDataset

from . import TaskData, TaskInfo
from .common import cfg_get


def perturbations(width: int, depth: int, target_rank: int | None, scale: float, seed: int) -> list[torch.Tensor]:
    """The known ΔW_l, each with Frobenius norm `scale` · √width (= scale · ‖W_l‖_F for orthogonal W_l)."""
    if target_rank is not None and not 1 <= target_rank <= width:
        raise ValueError(f"task.target_rank={target_rank} must be null (full rank) or in [1, {width}]")
    gen = torch.Generator("cpu").manual_seed(seed)
    deltas = []
    for _ in range(depth):
        if target_rank is None:
            delta = torch.linalg.qr(torch.randn(width, width, generator=gen))[0]
        else:
            u = torch.linalg.qr(torch.randn(width, target_rank, generator=gen))[0]
            v = torch.linalg.qr(torch.randn(width, target_rank, generator=gen))[0]
            delta = u @ v.t()
        deltas.append(delta * (scale * width ** 0.5 / delta.norm()))
    return deltas


def task_info(cfg: Any) -> TaskInfo:
    return TaskInfo(num_classes=None, class_names=None)


def build_task_data(cfg: Any, backbone: Any) -> TaskData:
    if getattr(backbone, "kind", None) != "regression":
        raise ValueError("task=synthetic_fullrank needs backbone=synthetic_mlp (a frozen random network), "
                         f"got a {getattr(backbone, 'kind', type(backbone).__name__)!r} backbone")
    width, depth = backbone.width, backbone.depth
    weights = backbone.frozen_weights()  # the network is the backbone's: the data asks it, never imports it
    deltas = perturbations(width, depth, cfg_get(cfg, "target_rank", None), float(cfg_get(cfg, "perturbation", 0.5)),
                           int(cfg_get(cfg, "target_seed", 1)))
    teacher = [w + d for w, d in zip(weights, deltas)]
    gen = torch.Generator("cpu").manual_seed(int(cfg_get(cfg, "data_seed", 0)))
    splits, baseline = {}, {}
    for split, default in (("train", 4096), ("val", 512), ("test", 1024)):
        x = torch.randn(int(cfg_get(cfg, f"{split}_size", default)), width, generator=gen)
        y = backbone.forward_with(teacher, x)
        splits[split] = TensorDataset(x, y)
        baseline[split] = (backbone.forward_with(weights, x) - y).pow(2).sum(-1).mean().item()
    target_rank = cfg_get(cfg, "target_rank", None)
    subtask = "full-rank target" if target_rank is None else f"rank-{int(target_rank)} target"
    return TaskData(splits["train"], splits["val"], splits["test"], None, None, metric="rel_error", subtask=subtask,
                    extras={"baseline_mse": baseline, "delta_norms": [d.norm().item() for d in deltas]})
