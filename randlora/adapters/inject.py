"""Put adapters into a model, take them out, count what they train.

`inject` walks `named_modules()`, matches qualified names against `config.targets` (name suffixes, a preset or
a full-match regex), replaces each matched `nn.Linear` / `Conv1D` by its adapter wrapper and parametrizes each
matched `nn.MultiheadAttention.in_proj_weight`, then freezes everything except the adapters and
`trainable_extra`. It works on models built on the `meta` device (no weights, no bases drawn), so parameter
counts of 8B-parameter models cost nothing.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from .bases import SharedBases
from .config import AdapterConfig
from .full import train_everything
from .layer import AdaptedLayer, cache_during_forward, is_conv1d, layer_shape
from .lora import LoRA
from .nola import NoLA
from .randlora import RandLoRA
from .vera import VeRA

METHOD_CLASSES: dict[str, type[AdaptedLayer]] = {
    "lora": LoRA, "loraplus": LoRA, "vera": VeRA, "nola": NoLA, "randlora": RandLoRA,
}
CONFIG_ATTR = "adapter_config"  # set on the root model by `inject`


def _supported(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, nn.MultiheadAttention)) or is_conv1d(module)


def _matches(name: str, patterns: list[str] | re.Pattern) -> bool:
    if isinstance(patterns, re.Pattern):
        return patterns.fullmatch(name) is not None
    return any(name == p or name.endswith("." + p) for p in patterns)


def find_targets(model: nn.Module, config: AdapterConfig | dict | Any) -> dict[str, nn.Module]:
    """Qualified name -> module for every supported module matching `config.targets`; fails loudly if none."""
    config = AdapterConfig.from_any(config)
    patterns = config.target_patterns()
    matched, unsupported = {}, []
    for name, module in model.named_modules():
        if isinstance(module, AdaptedLayer) or not name or not _matches(name, patterns):
            continue
        if _supported(module):
            if isinstance(module, nn.MultiheadAttention) and not module._qkv_same_embed_dim:
                raise ValueError(f"{name}: nn.MultiheadAttention with separate q/k/v projections (kdim/vdim "
                                 "differ from embed_dim) is not supported; target its layers explicitly")
            matched[name] = module
        else:
            unsupported.append(f"{name} ({type(module).__name__})")
    examples = [n for n, m in model.named_modules() if _supported(m)][:8]
    if not matched:
        shown = patterns.pattern if isinstance(patterns, re.Pattern) else patterns
        hint = f"; names matched but not adaptable: {unsupported[:5]}" if unsupported else ""
        raise ValueError(f"adapter.targets={config.targets!r} (patterns {shown}) matched no nn.Linear, Conv1D or "
                         f"nn.MultiheadAttention module{hint}. Adaptable modules look like: {examples}")
    if not isinstance(patterns, re.Pattern):  # every entry of a list adapts something: none is skipped silently
        for pattern in patterns:
            if not any(_matches(name, [pattern]) for name in matched):
                near = [u for u in unsupported if _matches(u.split(" ")[0], [pattern])]
                hint = f" (it names {near[:3]}, not adaptable)" if near else ""
                raise ValueError(f"adapter.targets entry {pattern!r} matched no nn.Linear, Conv1D or "
                                 f"nn.MultiheadAttention module{hint}, while others did: drop it or name "
                                 f"adaptable modules, which look like {examples}")
    return matched


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def _device_of(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def inject(model: nn.Module, config: AdapterConfig | dict | Any) -> list[str]:
    """Adapt every module of `model` matching `config.targets`, in place; return the adapted names.

    Afterwards only adapter parameters and those under `config.trainable_extra` require grad (for `full`,
    every parameter does). The config is kept on the model (`model.adapter_config`) for saving.
    """
    config = AdapterConfig.from_any(config)
    if getattr(model, CONFIG_ATTR, None) is not None:
        raise ValueError("this model already has an adapter; build a fresh model to inject another")
    if config.name == "full":
        names = train_everything(model)
    else:
        targets = find_targets(model, config)
        for p in model.parameters():
            p.requires_grad_(False)
        cls = METHOD_CLASSES[config.name]
        shapes = [layer_shape(m) for m in targets.values()]
        bases: SharedBases | None = None
        if hasattr(cls, "make_bases"):
            bases = cls.make_bases(shapes, config, _device_of(next(iter(targets.values()))))
        layer_configs = _layer_configs(config, list(targets))
        for (name, module), (d_out, d_in) in zip(targets.items(), shapes):
            device = _device_of(module)
            if isinstance(module, nn.MultiheadAttention):
                adapter = cls(d_out, d_in, layer_configs[name], None, bases, device=device)
                parametrize.register_parametrization(module, "in_proj_weight", adapter, unsafe=True)
                cache_during_forward(module)
            else:
                _set_submodule(model, name, cls(d_out, d_in, layer_configs[name], module, bases, device=device))
        names = list(targets)
    _mark_extra_trainable(model, config.trainable_extra)
    object.__setattr__(model, CONFIG_ATTR, config)
    return names



def _layer_configs(config: AdapterConfig, names: list[str]) -> dict[str, AdapterConfig]:
    """Each target's config: `config`, or a copy without dropout for a layer outside `config.dropout_targets`."""
    if config.dropout_targets is None:
        return {name: config for name in names}
    for pattern in config.dropout_targets:
        if not any(_matches(name, [pattern]) for name in names):
            raise ValueError(f"adapter.dropout_targets entry {pattern!r} names no adapted layer; adapted layers "
                             f"look like {names[:4]}")
    no_dropout = dataclasses.replace(config, dropout=0.0)
    return {name: config if _matches(name, config.dropout_targets) else no_dropout for name in names}


def adapter_config(model: nn.Module) -> AdapterConfig | None:
    """The config `inject` gave this model (what its adapter file stores and its optimizer uses), or None."""
    return getattr(model, CONFIG_ATTR, None)

def _mark_extra_trainable(model: nn.Module, prefixes: list[str]) -> None:
    for prefix in prefixes:
        hits = [p for n, p in model.named_parameters() if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            raise ValueError(f"adapter.trainable_extra entry {prefix!r} matches no parameter name prefix")
        for p in hits:
            p.requires_grad_(True)


def adapter_layers(model: nn.Module) -> list[tuple[AdaptedLayer, torch.Tensor | None]]:
    """Every adapter with the tensor it merges into (None for layer wrappers: their base_layer.weight)."""
    found = []
    for module in model.modules():
        if isinstance(module, parametrize.ParametrizationList):
            for p in module:
                if isinstance(p, AdaptedLayer):
                    found.append((p, module.original))
        elif isinstance(module, AdaptedLayer) and module.base_layer is not None:
            found.append((module, None))
    return found


def merge(model: nn.Module) -> None:
    """Fold ΔW into the frozen weights (outputs unchanged, adapters then cost nothing at inference)."""
    for layer, weight in adapter_layers(model):
        layer.merge_into(layer.base_layer.weight.data if weight is None else weight.data)


def unmerge(model: nn.Module) -> None:
    """Undo `merge` (exact up to float round-off)."""
    for layer, weight in adapter_layers(model):
        layer.unmerge_from(layer.base_layer.weight.data if weight is None else weight.data)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; frozen random bases are buffers and count in neither."""
    trainable = total = 0
    for p in model.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def basis_checksum(model: nn.Module) -> str | None:
    """Checksum of the model's frozen random bases (None when it has none, or on the meta device)."""
    for module in model.modules():
        if isinstance(module, SharedBases):
            return module.checksum
    return None


def predict_trainable(model: nn.Module, config: AdapterConfig | dict | Any) -> int:
    """Trainable parameters `inject(model, config)` would give, computed from the target shapes alone."""
    config = AdapterConfig.from_any(config)
    if config.name == "full":
        return sum(p.numel() for p in model.parameters())
    cls = METHOD_CLASSES[config.name]
    count = sum(cls.num_trainable(*layer_shape(m), config) for m in find_targets(model, config).values())
    for prefix in config.trainable_extra:
        count += sum(p.numel() for n, p in model.named_parameters() if n == prefix or n.startswith(prefix + "."))
    return count


def match_rank(model: nn.Module | Callable[[], nn.Module], config: AdapterConfig | dict | Any,
               target_params: int, ranks: range | list[int] | None = None) -> tuple[int, int]:
    """The rank whose trainable count is closest to `target_params`: (rank, trainable count).

    `model` may be a model (best built on the meta device) or a factory. Ties go to the smaller rank. By default
    ranks run from 1 to the smallest side of any adapted layer: a larger rank is no longer a rank of that layer
    (RandLoRA would reach a budget with one oversized basis instead of several real ones).
    """
    base = AdapterConfig.from_any(config)
    model = model() if callable(model) and not isinstance(model, nn.Module) else model
    if ranks is None:
        sides = [min(layer_shape(m)) for m in find_targets(model, base).values()]
        ranks = range(1, min(sides, default=1024) + 1)
    best: tuple[int, int] | None = None
    for rank in ranks:
        count = predict_trainable(model, dataclasses.replace(base, rank=rank))
        if best is None or abs(count - target_params) < abs(best[1] - target_params):
            best = (rank, count)
    return best
