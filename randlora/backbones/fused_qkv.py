"""GPT-2's fused attention projection `c_attn` split into query, key and value layers, and joined back.

GPT-2 computes q, k and v with one transformers `Conv1D` (`attn.c_attn`, d → 3d, weight stored as (d, 3d)). LoRA's
and the RandLoRA authors' E2E code adapt only its query and value thirds (`enable_lora=[True, False, True]`), each
with its own adapter. `split_fused_qkv` replaces every such layer by a :class:`SplitQKV` holding three
`nn.Linear` (`c_attn.q`, `c_attn.k`, `c_attn.v`) with the same weights, whose output is the fused layer's
[q | k | v]; adapters then target `c_attn.q` and `c_attn.v` like any linear layer. `join_fused_qkv` turns
every :class:`SplitQKV` back into a `Conv1D` (after the adapters are merged and taken out), so an exported model
is a stock GPT-2 again.
"""
from __future__ import annotations

import torch
from torch import nn

from randlora.adapters.layer import is_conv1d

PARTS = ("q", "k", "v")


class SplitQKV(nn.Module):
    """A fused (d → 3d) `Conv1D` as three `nn.Linear` q, k, v (d → d each); forward returns [q | k | v]."""

    def __init__(self, fused: nn.Module) -> None:
        super().__init__()
        d_in, d_out = fused.weight.shape
        if d_out % 3:
            raise ValueError(f"a fused q/k/v layer needs 3·d outputs, got {d_out}")
        width = d_out // 3
        weight, bias = fused.weight.detach(), fused.bias.detach()
        for i, part in enumerate(PARTS):
            linear = nn.Linear(d_in, width, device=weight.device, dtype=weight.dtype)
            with torch.no_grad():
                linear.weight.copy_(weight[:, i * width:(i + 1) * width].t())
                linear.bias.copy_(bias[i * width:(i + 1) * width])
            linear.weight.requires_grad_(fused.weight.requires_grad)
            linear.bias.requires_grad_(fused.bias.requires_grad)
            setattr(self, part, linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.q(x), self.k(x), self.v(x)], dim=-1)

    def joined(self) -> nn.Module:
        """The fused `Conv1D` with the (possibly merged) weights of the three parts."""
        from transformers.pytorch_utils import Conv1D

        parts = [getattr(self, p) for p in PARTS]
        for name, layer in zip(PARTS, parts):
            if not isinstance(layer, nn.Linear):
                raise TypeError(f"c_attn.{name} is a {type(layer).__name__}: merge and take out the adapters first")
        fused = Conv1D(3 * parts[0].out_features, parts[0].in_features)
        with torch.no_grad():
            fused.weight = nn.Parameter(torch.cat([p.weight.detach().t() for p in parts], dim=1).contiguous())
            fused.bias = nn.Parameter(torch.cat([p.bias.detach() for p in parts]))
        return fused


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def split_fused_qkv(model: nn.Module) -> list[str]:
    """Replace every GPT-2 `attn.c_attn` `Conv1D` of `model` by a :class:`SplitQKV`; returns their names."""
    names = [name for name, module in model.named_modules()
             if (name == "c_attn" or name.endswith(".c_attn")) and is_conv1d(module)]
    if not names:
        raise ValueError("backbone.split_fused_qkv=true, but the model has no GPT-2 fused `c_attn` Conv1D to split "
                         "(it applies to GPT-2 models only)")
    for name in names:
        _replace(model, name, SplitQKV(model.get_submodule(name)))
    return names


def join_fused_qkv(model: nn.Module) -> int:
    """Replace every :class:`SplitQKV` of `model` by its fused `Conv1D`; returns how many were joined."""
    names = [name for name, module in model.named_modules() if isinstance(module, SplitQKV)]
    for name in names:
        _replace(model, name, model.get_submodule(name).joined())
    return len(names)
