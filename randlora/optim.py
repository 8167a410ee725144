"""Optimizer and learning-rate schedule for adapter training.

AdamW over :func:`randlora.adapters.param_groups` (only trainable parameters; no weight decay on norms
and biases; LoRA+ puts LoRA's B matrices at ``lr_ratio * lr``, the ratio read from the adapter the model
carries, so the value trained with is the one its config and adapter file show), and a per-optimizer-step schedule
``lr(t) = lr * f(t)`` with a linear warm-up over ``W`` steps followed by a decay over the remaining
``T - W`` steps:

    f(t) = (t + 1) / W                                  for t < W
    f(t) = m + (1 - m) * 0.5 * (1 + cos(pi * p))        cosine,   p = (t - W) / max(1, T - W)
    f(t) = m + (1 - m) * (1 - p)                        linear
    f(t) = 1                                            constant

where ``m = min_lr_ratio`` (default 0) and ``p`` is clipped to [0, 1].
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # torch loads lazily: the config checks import SCHEDULES from here
    import torch
    from torch import nn
    from torch.optim.lr_scheduler import LambdaLR

SCHEDULES = ("cosine", "linear", "constant")


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str, min_lr_ratio: float = 0.0) -> float:
    """The multiplier f(step) of the base learning rate (see the module docstring)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, max(0.0, (step - warmup_steps) / max(1, total_steps - warmup_steps)))
    if schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "linear":
        decay = 1.0 - progress
    else:
        raise ValueError(f"optim.schedule={schedule!r} is invalid: allowed is one of {', '.join(SCHEDULES)}")
    return min_lr_ratio + (1.0 - min_lr_ratio) * decay


def build_optimizer(model: nn.Module, optim: Mapping[str, Any]) -> torch.optim.Optimizer:
    """AdamW over the model's trainable parameters, grouped by the adapter library (LoRA+'s ``lr_ratio`` is the
    adapter's own setting, :func:`randlora.adapters.adapter_config`)."""
    import torch

    from randlora.adapters import adapter_config, param_groups

    config = adapter_config(model)
    groups = param_groups(model, lr=optim["lr"], weight_decay=optim["weight_decay"],
                          lr_ratio=None if config is None else config.lr_ratio)
    if optim.get("head_lr") is not None:
        groups = split_head_group(model, groups, float(optim["head_lr"]), float(optim["weight_decay"]))
    return torch.optim.AdamW(groups, lr=optim["lr"], betas=tuple(optim["betas"]), eps=optim.get("eps", 1e-8))


def split_head_group(model: nn.Module, groups: list[dict], head_lr: float, weight_decay: float) -> list[dict]:
    """Move the backbone's fresh head (``model.head_prefixes``) into a group of its own at ``head_lr``, as the
    authors' vision code trains its linear head at a fixed 1e-3 whatever the adapter's lr (``optim.head_lr``)."""
    prefixes = tuple(getattr(model, "head_prefixes", None) or ())
    if head_lr <= 0:
        raise ValueError(f"optim.head_lr={head_lr} must be > 0, or null for the adapter's lr")
    head = [p for name, p in model.named_parameters() if p.requires_grad and name.startswith(prefixes)] \
        if prefixes else []
    if not head:
        raise ValueError("optim.head_lr is set but the backbone has no trainable head (head_prefixes "
                         f"{list(prefixes)}); set optim.head_lr=null")
    ids = {id(p) for p in head}
    rest = [{**g, "params": [p for p in g["params"] if id(p) not in ids]} for g in groups]
    return [g for g in rest if g["params"]] + [{"name": "head", "params": head, "lr": head_lr,
                                               "weight_decay": weight_decay}]


def build_scheduler(optimizer: torch.optim.Optimizer, optim: Mapping[str, Any], total_steps: int) -> LambdaLR:
    """The warm-up + decay schedule, to be stepped once per optimizer step."""
    from torch.optim.lr_scheduler import LambdaLR

    ratio = optim.get("warmup_ratio")  # a fraction of the steps (GLUE: the authors' 6 %) instead of a count
    warmup = int(ratio * total_steps) if ratio is not None else int(optim["warmup_steps"])
    schedule = str(optim["schedule"])
    min_ratio = float(optim.get("min_lr_ratio", 0.0))
    return LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total_steps, schedule, min_ratio))
