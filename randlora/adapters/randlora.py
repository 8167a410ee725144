"""RandLoRA (Albert et al., ICLR 2025): a full-rank update from frozen random low-rank bases.

For a layer W0 ∈ R^{d_out×d_in}, let m = min(d_in, d_out) (the small side) and M = max(d_in, d_out):

    ΔW_{M×m} = s · Σ_{j=1..n} B_j Λ_j A Γ_j,      ΔW = ΔW_{M×m} if d_in ≤ d_out else ΔW_{M×m}ᵀ

    B_j ∈ R^{M×r}  frozen, one per basis;   A ∈ R^{r×m}  frozen, one for all bases;
    Λ_j = diag(λ_j), λ_j ∈ R^r  trainable;  Γ_j = diag(γ_j), γ_j ∈ R^m  trainable (Γ acts on the small side).

n = ⌈m / r⌉ bases (or ⌊m/r⌋ + 1, the authors' CLIP code), so n·r ≥ m and ΔW can reach full rank m.
Trainable parameters per layer: n (r + m) — a *smaller* r means more bases and more parameters.
Bases are drawn once from `basis_seed` (CPU, float32), sized to the largest adapted layer (A: r × max m,
B_j: max M × r, max n of them) and sliced per layer: A[:, :m] and B_j[:M] for j < n.

Scale and init conventions (`scaling`), one of λ, γ starts at zero so that ΔW = 0:
    ours          s = α / r, α = 20 r by default      λ = 0        γ = 1 / m   (PEFT's init with s = 20)
    peft          s = α / r, α = 640 by default       λ = 0        γ = 1 / m   (PEFT's RandLoraConfig)
    authors_llm   s = α / (r √n), α = 2 r by default  λ = 0        γ = 1 / m   (their layer sets 1/M, then
                                                                               reset_randlora_parameters 1/m)
    authors_clip  s = 10 α / r, α = 1 by default      γ = 0        λ = 1 / max(n, r)   (their vision code)

Write U = stack_j (λ_j ⊙ A ⊙ γ_j) ∈ R^{nr×m} (row j·r + k is λ_j[k] A[k] ⊙ γ_j) and B = [B_1 … B_n] ∈ R^{M×nr};
then ΔW_{M×m} = s B U. Two ways to apply it to T tokens, with the same result:
- activation path: y = W0 x + s B (U x)           ≈ T·nr·(2(d_in + d_out) + m) extra multiply-adds per step;
- weight path:     y = (W0 + s ΔW) x, ΔW formed    ≈ T·d_out·d_in + 3·nr·d_out·d_in (formed in forward,
  re-formed in backward instead of stored, and the projection Bᵀ G of the weight gradient G).
`path: auto` takes the cheaper for the batch at hand: the weight path whenever tokens per step ≫ m (vision),
the activation path for few tokens (generation). Neither saves an n-fold expanded tensor for backward:
the custom autograd functions (:mod:`randlora.adapters.randlora_fused`) keep only x and the trainable vectors.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .bases import SharedBases, checksum, random_basis
from .config import AdapterConfig
from .layer import AdaptedLayer, add_low_rank_, writable_in_place
from .randlora_fused import (AdaptedWeight, DeltaWeight, ExpandFromBases, FusedLinear, ProjectOntoBases, ScaledBases,
                             cast_basis)


def num_randlora_bases(min_dim: int, config: AdapterConfig) -> int:
    if config.num_bases is not None:
        return config.num_bases
    if config.num_bases_rule == "floor_plus_one":
        return min_dim // config.rank + 1
    return math.ceil(min_dim / config.rank)


PEFT_DEFAULT_ALPHA = 640.0
"""PEFT's `RandLoraConfig.randlora_alpha` default (fixed, not a multiple of the rank)."""


def convention(config: AdapterConfig, n: int, d_out: int, d_in: int) -> tuple[float, float, float]:
    """(scale s, initial λ, initial γ) for the configured `scaling` convention (see the module docstring)."""
    r, m = config.rank, min(d_out, d_in)

    def alpha(default: float) -> float:
        return default if config.alpha is None else float(config.alpha)

    if config.scaling == "ours":
        return alpha(20.0 * r) / r, 0.0, 1.0 / m
    if config.scaling == "peft":
        return alpha(PEFT_DEFAULT_ALPHA) / r, 0.0, 1.0 / m
    if config.scaling == "authors_llm":
        return alpha(2.0 * r) / (r * math.sqrt(n)), 0.0, 1.0 / m
    return 10.0 * alpha(1.0) / r, 1.0 / max(n, r), 0.0  # authors_clip


# --- the layer ---------------------------------------------------------------------------------------------
class RandLoRA(AdaptedLayer):
    def __init__(self, d_out: int, d_in: int, config: AdapterConfig, base_layer: nn.Module | None = None,
                 bases: SharedBases | None = None, device=None):
        super().__init__(d_out, d_in, config, base_layer)
        self.rank = config.rank
        self.d_small, self.d_large = min(d_out, d_in), max(d_out, d_in)
        self.small_is_input = d_in <= d_out
        self.num_bases = num_randlora_bases(self.d_small, config)
        self.scale, lam0, gam0 = convention(config, self.num_bases, d_out, d_in)
        self.randlora_lambda = nn.Parameter(torch.full((self.num_bases, self.rank), lam0, device=device))
        self.randlora_gamma = nn.Parameter(torch.full((self.num_bases, self.d_small), gam0, device=device))
        self.bases = bases
        self.path = config.path

    @staticmethod
    def num_trainable(d_out: int, d_in: int, config: AdapterConfig) -> int:
        m = min(d_out, d_in)
        return num_randlora_bases(m, config) * (config.rank + m)

    @staticmethod
    def make_bases(shapes: list[tuple[int, int]], config: AdapterConfig, device) -> SharedBases:
        """A (r × max m), and for each distinct (M, n) among the layers a flat B (M × n·r), column j·r + k = B_j[:, k].

        Flat Bs with the same n share storage (row views of the tallest), see below.
        """
        r = config.rank
        small = max(min(s) for s in shapes)
        large = max(max(s) for s in shapes)
        n_max = max(num_randlora_bases(min(s), config) for s in shapes)
        keys = sorted({(max(s), num_randlora_bases(min(s), config)) for s in shapes})
        meta = torch.device(device).type == "meta"
        if meta:
            A = torch.empty(r, small, device="meta")
            B_all = torch.empty(n_max, large, r, device="meta")
            digest = None
        else:
            gen = torch.Generator("cpu").manual_seed(config.basis_seed)
            # very_sparse's probability uses PEFT's min_dim: the smaller of the largest output and input widths
            sparse_dim = min(max(s[0] for s in shapes), max(s[1] for s in shapes))
            A = random_basis((r, small), config.basis, gen, sparse_dim)
            B_all = random_basis((n_max, large, r), config.basis, gen, sparse_dim)
            digest = checksum([A, B_all])
        tensors = {"A": A.to(device)}
        # One contiguous flat B per distinct n, with the most rows any layer with that n needs; layers with
        # fewer rows (M) get a view of its first M rows (the same values), so e.g. LLaMA's q (2048 rows) and
        # up/down (8192 rows) share one tensor. The full B_all is not kept.
        for M, n in sorted(keys, key=lambda key: (key[1], -key[0])):
            tallest = max(m for m, k in keys if k == n)
            if M == tallest:
                tensors[f"B_{M}_{n}"] = B_all[:n, :M, :].permute(1, 0, 2).reshape(M, n * r).to(device)
            else:
                tensors[f"B_{M}_{n}"] = tensors[f"B_{tallest}_{n}"][:M]
        return SharedBases("randlora", config.basis_seed, tensors, digest)

    def frozen_bases(self, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(A[:, :m], flat B) of this layer, in `dtype` if given (casts are cached per shared tensor)."""
        name = f"B_{self.d_large}_{self.num_bases}"
        if dtype is None:
            return self.bases.A[:, : self.d_small], getattr(self.bases, name)
        A = cast_basis(self.bases, "A", dtype)
        return A[:, : self.d_small], cast_basis(self.bases, name, dtype)

    def delta_weight(self) -> torch.Tensor:
        A, B = self.frozen_bases(self.randlora_lambda.dtype)
        delta = DeltaWeight.apply(A, B, self.randlora_lambda, self.randlora_gamma, self.scale)
        return delta if self.small_is_input else delta.t()

    def delta_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Activation path: s · B (U x) (or its transpose when the small side is the output)."""
        A, B = self.frozen_bases(x.dtype)
        U = ScaledBases.apply(A, self.randlora_lambda.to(x.dtype), self.randlora_gamma.to(x.dtype))
        if self.small_is_input:
            return self.scale * F.linear(F.linear(x, U), B)
        return self.scale * F.linear(F.linear(x, B.t()), U.t())

    def add_delta(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Activation path into the base output y, in place: y += s B (U x) (or s (x B) U, small side = output).

        The n·r-wide product h is the only new activation-sized tensor; U is re-formed in backward, not kept.
        """
        dtype = y.dtype
        x = x.to(dtype)
        A, B = self.frozen_bases(dtype)
        lam, gam = self.randlora_lambda.to(dtype), self.randlora_gamma.to(dtype)
        if self.small_is_input:
            return add_low_rank_(y, ProjectOntoBases.apply(x, A, lam, gam), B, self.scale)
        if not writable_in_place(y):
            y = y.clone()
        return ExpandFromBases.apply(y, x @ B, A, lam, gam, self.scale)

    def adapted_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """Parametrization mode: W0 + s ΔW formed with one weight-sized allocation."""
        A, B = self.frozen_bases(weight.dtype)
        return AdaptedWeight.apply(weight, A, B, self.randlora_lambda, self.randlora_gamma, self.scale,
                                   self.small_is_input)

    def choose_path(self, x: torch.Tensor) -> str:
        """The configured path, or for `auto` the one with fewer extra multiply-adds for this input.

        With T tokens, M × m the layer (large × small side), nr = n·r, and training (λ, γ need gradients):
            activation  T·nr·(2M + 3m) when x needs a gradient (both orientations); without it
                        T·nr·(2M + 2m) (small side = input) or T·nr·(M + 2m) (small side = output)
            weight      T·M·m + 2·M·m·nr                (dL/dW = gᵀx and its projection; W formed in forward)
                        + M·m·nr when x needs a gradient (W re-formed in backward instead of stored)
        Inference: activation T·nr·(M + m), weight M·m·nr. Measured on CPU (fp32, 768 × 768, r = 6) the two
        paths cost the same at ≈ 576 tokens, where this model puts the crossover.
        """
        if self.path != "auto":
            return self.path
        tokens = x.numel() // max(x.shape[-1], 1)
        nr, big, small = self.num_bases * self.rank, self.d_large, self.d_small
        x_grad = x.requires_grad
        if torch.is_grad_enabled() and self.randlora_lambda.requires_grad:
            if self.small_is_input:  # x Uᵀ, h Bᵀ; backward g B, (g B)ᵀ x, and (g B) U for x's gradient
                activation = tokens * nr * (2 * big + 2 * small + (small if x_grad else 0))
            else:  # x B, h U; backward hᵀ g, and g Uᵀ then (g Uᵀ) Bᵀ for x's gradient
                activation = tokens * nr * (big + 2 * small + (big + small if x_grad else 0))
            weight = tokens * big * small + (3 if x_grad else 2) * nr * big * small
            if self.training and isinstance(self.dropout, nn.Dropout):  # not fusable: W0 x and ΔW dropout(x)
                weight += tokens * big * small
        else:
            activation, weight = tokens * nr * (big + small), nr * big * small
        return "weight" if weight < activation else "activation"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.base_layer is None or self.merged:
            return super().forward(x)
        path = self.choose_path(x)
        if path == "activation":
            return super().forward(x)
        fusable = not (self.training and isinstance(self.dropout, nn.Dropout)) \
            and not self.base_layer.weight.requires_grad
        if not fusable:
            return self.base_layer(x) + F.linear(self.dropout(x), self.delta_weight().to(x.dtype))
        A, B = self.frozen_bases()
        return FusedLinear.apply(x, self.base_weight(), self.base_layer.bias, A, B, self.randlora_lambda,
                                 self.randlora_gamma, self.scale, self.small_is_input)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, rank={self.rank}, num_bases={self.num_bases}, "
                f"scale={self.scale:.4g}, path={self.path}")
