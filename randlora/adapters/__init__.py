"""The adapter library: full fine-tuning, LoRA, LoRA+, VeRA, NoLA and RandLoRA behind one small API.

    names = inject(model, config)      # adapt modules matching config.targets; freeze the rest
    merge(model); unmerge(model)       # fold ΔW into W0 and back
    count_parameters(model)            # (trainable, total)
    save_adapter(model, path); load_adapter(model, path)
    param_groups(model, lr, weight_decay, lr_ratio=None)
    adapter_config(model)              # the injected AdapterConfig (LoRA+'s lr_ratio lives here)

No Hydra and no Lightning here: a plain nn.Module in, the same module out.
"""
from .config import PRESETS, AdapterConfig
from .groups import param_groups
from .inject import (adapter_config, adapter_layers, basis_checksum, count_parameters, find_targets, inject, match_rank, merge,
                     predict_trainable, unmerge)
from .save import base_signature, load_adapter, read_adapter_metadata, save_adapter

__all__ = [
    "AdapterConfig", "PRESETS", "adapter_config", "inject", "merge", "unmerge", "count_parameters", "basis_checksum",
    "find_targets", "predict_trainable", "match_rank", "adapter_layers", "param_groups", "save_adapter",
    "load_adapter", "read_adapter_metadata", "base_signature",
]
