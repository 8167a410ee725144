"""LoRA (Hu et al., 2022) and LoRA+ (Hayou et al., 2024).

    ΔW = s · B A,   A ∈ R^{r×d_in} kaiming-uniform(a=√5),  B ∈ R^{d_out×r} zeros,
    s = α / r   (rsLoRA: s = α / √r),   α defaults to 2r (the paper's LLM setting; `convention=ours`)
    or to 1 (`convention=authors_vision`, the authors' vision/CLIP code: LoRA32 s = 1/32).

rank(ΔW) ≤ r; trainable parameters per layer: r (d_in + d_out).
LoRA+ is the same layer trained with lr_B = lr_ratio · lr_A (see `param_groups`).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import AdapterConfig
from .layer import AdaptedLayer, add_low_rank_


def lora_scale(config: AdapterConfig) -> float:
    default_alpha = 1.0 if config.convention == "authors_vision" else 2.0 * config.rank
    alpha = default_alpha if config.alpha is None else float(config.alpha)
    return alpha / (math.sqrt(config.rank) if config.rslora else config.rank)


class LoRA(AdaptedLayer):
    def __init__(self, d_out: int, d_in: int, config: AdapterConfig, base_layer: nn.Module | None = None,
                 bases=None, device=None):
        super().__init__(d_out, d_in, config, base_layer)
        self.rank = config.rank
        self.scale = lora_scale(config)
        self.lora_A = nn.Parameter(torch.empty(config.rank, d_in, device=device))
        self.lora_B = nn.Parameter(torch.zeros(d_out, config.rank, device=device))
        if self.lora_A.device.type != "meta":
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    @staticmethod
    def num_trainable(d_out: int, d_in: int, config: AdapterConfig) -> int:
        return config.rank * (d_in + d_out)

    def delta_weight(self) -> torch.Tensor:
        return self.scale * (self.lora_B @ self.lora_A)

    def delta_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.linear(x, self.lora_A.to(x.dtype)), self.lora_B.to(x.dtype))

    def add_delta(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y += s · (x Aᵀ) Bᵀ with one accumulating GEMM (no output-sized temporaries)."""
        h = F.linear(x.to(y.dtype), self.lora_A.to(y.dtype))
        return add_low_rank_(y, h, self.lora_B, self.scale)
