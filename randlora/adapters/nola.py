"""NoLA (Koohpayegani et al., 2024): LoRA's factors as learned mixtures of frozen random bases.

    ΔW = s · (Σ_k α_k B_k)(Σ_k β_k A_k),   k = 1..K,   A_k ∈ R^{r×d_in}, B_k ∈ R^{d_out×r} frozen from `basis_seed`.

Conventions (`convention`):
    ours            s = alpha / r (alpha defaults to r, so s = 1); bases kaiming-uniform (a = √5);
                    α ∈ R^K zeros (so ΔW = 0 at start), β ~ N(0, 1/K) (so Σ β_k A_k has the scale of one A_k)
    authors_vision  s = alpha / r (alpha defaults to 1); bases kaiming-uniform (a = √5) divided by their std;
                    α = β = 1/K (the authors' CLIP code: ΔW starts at s·mean(B_k)·mean(A_k), not 0)

rank(ΔW) ≤ r; trainable parameters per layer: 2K (paper: K = 1024 rank-1 bases).
Unlike the NoLA paper, which draws bases per layer, the bases here are drawn once, sized to the largest layer
and sliced per layer (as VeRA and RandLoRA do); each layer still learns its own mixture.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .bases import SharedBases, checksum, kaiming_uniform, unit_std
from .config import AdapterConfig
from .layer import AdaptedLayer, add_low_rank_

DEFAULT_NUM_BASES = 1024


def num_nola_bases(config: AdapterConfig) -> int:
    return config.num_bases or DEFAULT_NUM_BASES


class NoLA(AdaptedLayer):
    def __init__(self, d_out: int, d_in: int, config: AdapterConfig, base_layer: nn.Module | None = None,
                 bases: SharedBases | None = None, device=None):
        super().__init__(d_out, d_in, config, base_layer)
        k = num_nola_bases(config)
        self.bases = bases
        authors = config.convention == "authors_vision"
        default_alpha = 1.0 if authors else float(config.rank)
        self.scale = (default_alpha if config.alpha is None else float(config.alpha)) / config.rank
        self.nola_alpha = nn.Parameter(torch.full((k,), 1.0 / k if authors else 0.0, device=device))
        self.nola_beta = nn.Parameter(torch.full((k,), 1.0 / k, device=device))
        if not authors and self.nola_beta.device.type != "meta":
            nn.init.normal_(self.nola_beta, std=k ** -0.5)

    @staticmethod
    def num_trainable(d_out: int, d_in: int, config: AdapterConfig) -> int:
        return 2 * num_nola_bases(config)

    @staticmethod
    def make_bases(shapes: list[tuple[int, int]], config: AdapterConfig, device) -> SharedBases:
        k, r = num_nola_bases(config), config.rank
        d_out_max = max(s[0] for s in shapes)
        d_in_max = max(s[1] for s in shapes)
        if torch.device(device).type == "meta":
            tensors = {"A": torch.empty(k, r, d_in_max, device="meta"),
                       "B": torch.empty(k, d_out_max, r, device="meta")}
            return SharedBases("nola", config.basis_seed, tensors, None)
        gen = torch.Generator("cpu").manual_seed(config.basis_seed)
        A = kaiming_uniform((k, r, d_in_max), gen)
        B = kaiming_uniform((k, d_out_max, r), gen)
        if config.convention == "authors_vision":
            A, B = unit_std(A), unit_std(B)
        return SharedBases("nola", config.basis_seed, {"A": A.to(device), "B": B.to(device)}, checksum([A, B]))

    def factors(self, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ α_k B_k, Σ β_k A_k) for this layer's slice: (d_out × r), (r × d_in)."""
        A = self.bases.A[:, :, : self.d_in].to(dtype)
        B = self.bases.B[:, : self.d_out, :].to(dtype)
        mixed_B = torch.einsum("k,kor->or", self.nola_alpha.to(dtype), B)
        mixed_A = torch.einsum("k,kri->ri", self.nola_beta.to(dtype), A)
        return mixed_B, mixed_A

    def delta_weight(self) -> torch.Tensor:
        mixed_B, mixed_A = self.factors(self.nola_alpha.dtype)
        return self.scale * (mixed_B @ mixed_A)

    def delta_forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed_B, mixed_A = self.factors(x.dtype)
        return self.scale * F.linear(F.linear(x, mixed_A), mixed_B)

    def add_delta(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y += s · (x mixed_Aᵀ) mixed_Bᵀ with one accumulating GEMM."""
        mixed_B, mixed_A = self.factors(y.dtype)
        return add_low_rank_(y, F.linear(x.to(y.dtype), mixed_A), mixed_B, self.scale)
