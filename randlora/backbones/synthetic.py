"""A frozen random network for the controlled experiment (`task=synthetic_fullrank`).

    f(x; W) = W_L tanh(W_{L-1} … tanh(W_1 x)),   W_l ∈ R^{width×width} random orthogonal (norm-preserving),

drawn from `model_kwargs.seed`. The task perturbs these weights by a known ΔW and asks adapters to recover it.
`model_kwargs`: width (default 64), depth (default 2), seed (default 0).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Backbone
from .config import BackboneConfig, ClassInfo


def base_weights(width: int, depth: int, seed: int) -> list[torch.Tensor]:
    """The frozen weights W_1..W_L, float32, identical on every machine (CPU generator)."""
    gen = torch.Generator("cpu").manual_seed(seed)
    return [torch.linalg.qr(torch.randn(width, width, generator=gen))[0] for _ in range(depth)]


def forward_with(weights: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    for i, w in enumerate(weights):
        x = x @ w.t()
        if i < len(weights) - 1:
            x = torch.tanh(x)
    return x


class SyntheticMLP(Backbone):
    kind = "regression"

    def __init__(self, cfg: BackboneConfig, task: ClassInfo | None = None):
        super().__init__()
        kw = {"width": 64, "depth": 2, "seed": 0, **cfg.model_kwargs}
        unknown = sorted(set(kw) - {"width", "depth", "seed"})
        if unknown:
            raise ValueError(f"backbone.model_kwargs keys {unknown} are not known for family 'synthetic'; "
                             "allowed: width, depth, seed")
        self.width, self.depth, self.seed = int(kw["width"]), int(kw["depth"]), int(kw["seed"])
        self.layers = nn.ModuleList(nn.Linear(self.width, self.width, bias=False) for _ in range(self.depth))
        with torch.no_grad():
            for layer, w in zip(self.layers, base_weights(self.width, self.depth, self.seed)):
                layer.weight.copy_(w)
        self.target_presets = {"all": [f"layers.{i}" for i in range(self.depth)]}
        self.default_targets = "all"

    def frozen_weights(self) -> list[torch.Tensor]:
        """W_1..W_L as drawn from the seed (not the adapted layers): what the task perturbs into its teacher."""
        return base_weights(self.width, self.depth, self.seed)

    @staticmethod
    def forward_with(weights: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """f(x; weights): this network with other weights (the task's teacher and its baseline)."""
        return forward_with(weights, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.depth - 1:
                x = torch.tanh(x)
        return x
