"""The weight updates ΔW = W − W0 of a run, per adapted layer, as d_out × d_in float32 matrices.

"Adapted layers" are the modules an adapter wraps; for full fine-tuning (which wraps nothing) they are the
modules of the backbone's default target preset, i.e. the layers LoRA or RandLoRA would adapt on the same
backbone, so every method's ΔW is compared layer for layer. For an adapter layer ΔW is its own
`delta_weight()` (exact: a LoRA update has rank ≤ r to the last bit); for a fine-tuned layer it is the trained
weight minus a copy of W0 taken before training (`initial_weights`).

`save_full_weights=true` in the training config writes these matrices to `delta_weights.safetensors` in the run
folder (the best-validation model's), so a run's updates can be studied without this code base.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrize

from randlora.adapters.inject import CONFIG_ATTR, find_targets
from randlora.adapters.layer import AdaptedLayer, is_conv1d

DELTA_FILE = "delta_weights.safetensors"


def adapted_layer_names(model: nn.Module) -> list[str]:
    """Qualified names of the adapted layers, in module order (see the module docstring)."""
    wrapped = [name for name, module in model.named_modules() if _adapter_of(module) is not None]
    if wrapped:
        return wrapped
    preset = model.targets() if hasattr(model, "targets") else None
    if not preset:
        raise ValueError(f"{type(model).__name__} has no adapter layers and no default target preset: "
                         "cannot tell which layers' updates to analyse")
    return list(find_targets(model, {"name": "lora", "targets": preset}))


def _adapter_of(module: nn.Module) -> AdaptedLayer | None:
    """The adapter of a wrapped layer or of a parametrized nn.MultiheadAttention, else None."""
    if isinstance(module, AdaptedLayer) and module.base_layer is not None:
        return module
    if isinstance(module, nn.MultiheadAttention) and parametrize.is_parametrized(module, "in_proj_weight"):
        return next((p for p in module.parametrizations.in_proj_weight if isinstance(p, AdaptedLayer)), None)
    return None


def _plain_weight(module: nn.Module) -> torch.Tensor:
    """The (d_out, d_in) weight of an unadapted Linear / Conv1D / MultiheadAttention (W0 + ΔW under FT)."""
    if isinstance(module, nn.MultiheadAttention):
        return module.in_proj_weight
    if is_conv1d(module):
        return module.weight.t()
    if isinstance(module, nn.Linear):
        return module.weight
    raise TypeError(f"cannot read a weight matrix from {type(module).__name__}")


def _base_weight(module: nn.Module) -> torch.Tensor:
    """W0 of a layer, adapted or not."""
    adapter = _adapter_of(module)
    if adapter is None:
        return _plain_weight(module)
    if adapter.base_layer is not None:
        return adapter.base_weight()
    return module.parametrizations.in_proj_weight.original


@torch.no_grad()
def initial_weights(model: nn.Module, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """A float32 CPU copy of W0 of every adapted layer (take it before training)."""
    names = adapted_layer_names(model) if names is None else names
    return {name: _base_weight(model.get_submodule(name)).detach().float().cpu().clone() for name in names}


@torch.no_grad()
def delta_weights(model: nn.Module, initial: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """ΔW (float32, CPU, d_out × d_in) of every adapted layer; `initial` is needed for unadapted layers (FT)."""
    deltas = {}
    for name in adapted_layer_names(model):
        module = model.get_submodule(name)
        adapter = _adapter_of(module)
        if adapter is not None:
            deltas[name] = adapter.delta_weight().detach().float().cpu()
        elif initial is None or name not in initial:
            raise ValueError(f"layer {name} is fine-tuned in place: its W0 (initial_weights) is needed for ΔW")
        else:
            deltas[name] = _plain_weight(module).detach().float().cpu() - initial[name]
    return deltas


@torch.no_grad()
def set_delta_weights(model: nn.Module, initial: dict[str, torch.Tensor], deltas: dict[str, torch.Tensor]) -> None:
    """Make every layer named in `deltas` compute with W0 + ΔW (for a fine-tuned or unadapted model).

    The layer's weight becomes `initial[name] + deltas[name]`; adapter layers are refused (their ΔW is not a
    free tensor): analyses that edit ΔW work on a model without adapters, with the run's ΔW set here.
    """
    for name, delta in deltas.items():
        module = model.get_submodule(name)
        if _adapter_of(module) is not None:
            raise ValueError(f"layer {name} carries an adapter; set ΔW on a model without adapters")
        weight = _plain_weight(module)
        weight.copy_((initial[name] + delta).to(weight.dtype))


def save_delta_weights(deltas: dict[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Write ΔW per layer (safetensors, keys = layer names) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({name: d.contiguous() for name, d in deltas.items()}, str(temporary),
              metadata={"format": "randlora-delta-weights/1", "layout": "d_out x d_in, float32"})
    os.replace(temporary, path)
    return path


def load_delta_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a `delta_weights.safetensors` file back (layer name -> ΔW)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"delta weights file {path} does not exist (train with save_full_weights=true)")
    return load_file(str(path))


def has_adapter(model: nn.Module) -> bool:
    """Whether an adapter (other than full fine-tuning) was injected into `model`."""
    config = getattr(model, CONFIG_ATTR, None)
    return config is not None and config.name != "full"
