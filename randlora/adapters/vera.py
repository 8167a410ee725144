"""VeRA (Kopiczko et al., 2024): vector-based random matrix adaptation.

    ΔW = s · diag(b) B diag(d) A,
    A ∈ R^{r×d_in_max}, B ∈ R^{d_out_max×r}: frozen, drawn from `basis_seed`, shared by all layers
    (each layer uses A[:, :d_in] and B[:d_out, :]);  b ∈ R^{d_out} zeros,  d ∈ R^r = d_initial (0.1).

Conventions (`convention`):
    ours            s = 1;           A, B kaiming-uniform with gain √2 (PEFT's VeRA: bound √(6/fan_in)),
                    bit-identical to PEFT's `vera_A`, `vera_B` for the same seed and shapes
    authors_vision  s = 10 · α / r (α = 1);  A, B kaiming-uniform (a = √5) divided by their std (authors' CLIP code)

Trainable parameters per layer: r + d_out.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .bases import SharedBases, checksum, kaiming_uniform, kaiming_uniform_gain_sqrt2, unit_std
from .config import AdapterConfig
from .layer import AdaptedLayer, add_low_rank_


def vera_scale(config: AdapterConfig) -> float:
    """1 (ours, PEFT, the VeRA paper) or 10 · α / r with α = 1 by default (authors_vision)."""
    if config.convention == "authors_vision":
        return 10.0 * (1.0 if config.alpha is None else float(config.alpha)) / config.rank
    return 1.0


def draw_vera_bases(config: AdapterConfig, d_out_max: int, d_in_max: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) on the CPU in float32 from `basis_seed`, A first, as PEFT draws them."""
    gen = torch.Generator("cpu").manual_seed(config.basis_seed)
    if config.convention == "authors_vision":
        A = unit_std(kaiming_uniform((config.rank, d_in_max), gen))
        return A, unit_std(kaiming_uniform((d_out_max, config.rank), gen))
    A = kaiming_uniform_gain_sqrt2((config.rank, d_in_max), gen)
    return A, kaiming_uniform_gain_sqrt2((d_out_max, config.rank), gen)


class VeRA(AdaptedLayer):
    def __init__(self, d_out: int, d_in: int, config: AdapterConfig, base_layer: nn.Module | None = None,
                 bases: SharedBases | None = None, device=None):
        super().__init__(d_out, d_in, config, base_layer)
        self.bases = bases
        self.scale = vera_scale(config)
        self.vera_lambda_b = nn.Parameter(torch.zeros(d_out, device=device))
        self.vera_lambda_d = nn.Parameter(torch.full((config.rank,), float(config.d_initial), device=device))

    @staticmethod
    def num_trainable(d_out: int, d_in: int, config: AdapterConfig) -> int:
        return config.rank + d_out

    @staticmethod
    def make_bases(shapes: list[tuple[int, int]], config: AdapterConfig, device) -> SharedBases:
        d_out_max = max(s[0] for s in shapes)
        d_in_max = max(s[1] for s in shapes)
        if torch.device(device).type == "meta":
            tensors = {"A": torch.empty(config.rank, d_in_max, device="meta"),
                       "B": torch.empty(d_out_max, config.rank, device="meta")}
            return SharedBases("vera", config.basis_seed, tensors, None)
        A, B = draw_vera_bases(config, d_out_max, d_in_max)
        return SharedBases("vera", config.basis_seed, {"A": A.to(device), "B": B.to(device)}, checksum([A, B]))

    def _sliced(self, dtype):
        return self.bases.A[:, : self.d_in].to(dtype), self.bases.B[: self.d_out, :].to(dtype)

    def delta_weight(self) -> torch.Tensor:
        A, B = self._sliced(self.vera_lambda_b.dtype)
        return self.scale * (self.vera_lambda_b[:, None] * (B * self.vera_lambda_d[None, :]) @ A)

    def delta_forward(self, x: torch.Tensor) -> torch.Tensor:
        A, B = self._sliced(x.dtype)
        h = F.linear(x, A) * self.vera_lambda_d.to(x.dtype)
        return F.linear(h, B) * (self.scale * self.vera_lambda_b.to(x.dtype))

    def add_delta(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y += (diag(b) B) (d ⊙ A x): b folded into the small d_out × r factor, one accumulating GEMM.

        Scaling the output by b instead (PEFT) keeps B h, a T × d_out tensor per layer, for b's gradient; here
        autograd keeps only the T × r tensors and gets b's gradient from the d_out × r product hᵀ g.
        """
        A, B = self._sliced(y.dtype)
        h = F.linear(x.to(y.dtype), A) * self.vera_lambda_d.to(y.dtype)
        return add_low_rank_(y, h, self.vera_lambda_b.to(y.dtype)[:, None] * B, self.scale)
