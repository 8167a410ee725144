"""Singular-value spectra of weight updates: effective ranks, truncation, subspace overlap.

For ΔW with singular values s_1 ≥ s_2 ≥ … ≥ s_m (m = min(d_out, d_in)), ‖ΔW‖²_F = Σ s_i²:

- energy rank at fraction f (`energy_rank`): the smallest k with Σ_{i≤k} s_i² ≥ f · ‖ΔW‖²_F, i.e. the number of
  singular directions that hold a fraction f (90 %, 99 %) of the update's squared Frobenius norm; 0 for ΔW = 0.
- entropy effective rank (`entropy_rank`, Roy & Vetterli 2007): exp(H(p)) with p_i = s_i / Σ_j s_j and
  H(p) = −Σ p_i log p_i: m for a flat spectrum, 1 for rank one, continuous in between.
- truncation to rank k (`truncate`): U_k diag(s_1..s_k) V_kᵀ, the best rank-k approximation (Eckart–Young).
- subspace overlap (`subspace_overlap`) of the top-k left (output) or right (input) singular vectors of A and B:
  ‖U_A,kᵀ U_B,k‖²_F / k, the mean squared cosine of the principal angles: 1 for the same subspace, 0 for
  orthogonal ones, k / d in expectation for a random k-dimensional subspace of R^d.

Everything is computed in float64.
"""
from __future__ import annotations

import math

import torch


def singular_values(delta: torch.Tensor) -> torch.Tensor:
    """s_1 ≥ … ≥ s_m of ΔW (float64)."""
    return torch.linalg.svdvals(delta.double())


def energy_rank(singular: torch.Tensor, fraction: float) -> int:
    """How many leading directions hold `fraction` of Σ s_i² (see the module docstring)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r} is invalid: allowed is a number in (0, 1]")
    energy = singular.double().pow(2)
    total = energy.sum().item()
    if total == 0:
        return 0
    cumulative = torch.cumsum(energy, 0) / total
    # round-off may leave the last cumulative value a hair under 1: never report more than m
    return min(int(torch.searchsorted(cumulative, torch.tensor(fraction - 1e-12, dtype=torch.float64)).item()) + 1,
               len(singular))


def entropy_rank(singular: torch.Tensor) -> float:
    """exp of the entropy of s / Σ s (Roy & Vetterli's effective rank); 0 for ΔW = 0."""
    s = singular.double()
    total = s.sum().item()
    if total == 0:
        return 0.0
    p = s[s > 0] / total
    return math.exp(-(p * p.log()).sum().item())


def truncate(delta: torch.Tensor, k: int) -> torch.Tensor:
    """The best rank-k approximation of ΔW (ΔW itself when k ≥ min(d_out, d_in)), in ΔW's dtype."""
    if k < 0:
        raise ValueError(f"k={k} is invalid: allowed is an integer >= 0")
    if k >= min(delta.shape):
        return delta.clone()
    if k == 0:
        return torch.zeros_like(delta)
    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    return ((u[:, :k] * s[:k]) @ vh[:k]).to(delta.dtype)


def top_subspaces(delta: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(U_k, V_k): orthonormal bases of the top-k left (d_out × k) and right (d_in × k) singular subspaces."""
    u, _, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    return u[:, :k], vh[:k].t()


def subspace_overlap(a: torch.Tensor, b: torch.Tensor, k: int) -> tuple[float, float]:
    """(left, right) overlap of the top-k singular subspaces of A and B (see the module docstring)."""
    if not 1 <= k <= min(*a.shape, *b.shape):
        raise ValueError(f"k={k} is invalid: allowed is 1..{min(*a.shape, *b.shape)}")
    ua, va = top_subspaces(a, k)
    ub, vb = top_subspaces(b, k)
    return (ua.t() @ ub).pow(2).sum().item() / k, (va.t() @ vb).pow(2).sum().item() / k


def rank_grid(max_rank: int) -> list[int]:
    """0, 1, 2, 4, … (powers of two below `max_rank`) and `max_rank` itself: the truncation ranks."""
    grid, k = [0], 1
    while k < max_rank:
        grid.append(k)
        k *= 2
    return grid + [max_rank]
