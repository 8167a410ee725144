"""Sizes that make no sense for the model or the data, refused in one line before anything trains.

- ``adapter.rank`` above the smallest side min(d_out, d_in) of an adapted layer (LoRA, LoRA+, NoLA, RandLoRA):
  the rank of ΔW cannot exceed it, so the extra parameters buy nothing (LoRA rank 1000 on a 64-wide layer
  trains 256,000 parameters for a rank-64 update). VeRA's rank is the size of its shared random projection,
  which may exceed a layer's width, and is not checked.
- ``budget`` outside what the adapter's ranks can give on this backbone (more than 10 % below rank 1's
  trainable count or above the largest rank's): the matched rank would be an edge of the range, far off.
- No validation sample while the best validation epoch selects the tested adapter
  (``callbacks.adapter_checkpoint``): there would be nothing to select by.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from randlora.utils.validate import ConfigError

RANKED_ADAPTERS = ("lora", "loraplus", "nola", "randlora")
BUDGET_SLACK = 0.10


def check_rank_fits(model: Any, settings: dict) -> None:
    """Refuse a rank above min(d_out, d_in) of the smallest adapted layer (see the module docstring)."""
    from randlora.adapters.inject import find_targets
    from randlora.adapters.layer import layer_shape

    rank = settings.get("rank")
    if settings.get("name") not in RANKED_ADAPTERS or rank is None:
        return
    sides = {name: min(layer_shape(module)) for name, module in find_targets(model, settings).items()}
    name = min(sides, key=sides.get)
    if rank > sides[name]:
        raise ConfigError(f"adapter.rank={rank} is invalid for {settings['name']}: the adapted layer {name} is only "
                          f"{sides[name]} wide (min(d_out, d_in)); allowed is an integer <= {sides[name]}")


def check_budget_reachable(model: Any, settings: dict, budget: int) -> None:
    """Refuse a ``budget`` that no rank of this adapter reaches on this model (see the module docstring)."""
    from randlora.adapters import AdapterConfig
    from randlora.adapters.inject import find_targets, predict_trainable
    from randlora.adapters.layer import layer_shape

    config = AdapterConfig.from_any(settings)
    if config.name == "full":
        raise ConfigError(f"budget={budget} is invalid with adapter full: full fine-tuning has no rank to match "
                          "a budget with; set budget=null")
    max_rank = min(min(layer_shape(m)) for m in find_targets(model, config).values())
    counts = [predict_trainable(model, dataclasses.replace(config, rank=r)) for r in (1, max_rank)]
    low, high = min(counts), max(counts)
    if not low * (1 - BUDGET_SLACK) <= budget <= high * (1 + BUDGET_SLACK):
        raise ConfigError(f"budget={budget} is unreachable with {config.name} on this backbone: its ranks 1..{max_rank} "
                          f"give {low:,}..{high:,} trainable parameters; allowed is a budget in that range")


def check_validation_for_selection(data: Any, selects_best: bool, task_name: str) -> None:
    """Refuse an empty validation split when the best validation epoch chooses the tested adapter."""
    if not selects_best or data.extras.get("val_is_test", False):
        return
    size = 0 if data.val is None else len(data.val)
    if size == 0:
        raise ConfigError(f"task {task_name!r} has no validation sample (task.val_size=0?) but the tested adapter is "
                          "the best validation epoch's (callbacks.adapter_checkpoint): set task.val_size >= 1, or "
                          "callbacks.adapter_checkpoint=null to test the final adapter")
