"""The adapters' initialisations and scales against the references, one test per docs/FIDELITY.md row.

Nothing here injects a reference's tensors into ours: each test builds both from the same seed and shapes and
compares what comes out (bases, scales, initial vectors, a few optimisation steps).
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from randlora.adapters import inject
from randlora.adapters.config import AdapterConfig

peft = pytest.importorskip("peft")


class Net(nn.Module):
    """96 -> 40 -> 96: the shapes of the issue's VeRA example."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(96, 40)
        self.fc2 = nn.Linear(40, 96)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def _sgd_steps(model: nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int = 3, lr: float = 0.5):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), target).backward()
        optimizer.step()


def test_vera_bases_are_peft_bases_for_the_same_seed_and_train_alike():
    torch.manual_seed(0)
    base = Net()
    theirs = peft.get_peft_model(copy.deepcopy(base), peft.VeraConfig(
        r=7, target_modules=["fc1", "fc2"], projection_prng_key=3)).base_model
    mine = copy.deepcopy(base)
    inject(mine, dict(name="vera", rank=7, basis_seed=3, targets=["fc1", "fc2"]))
    A, B = mine.fc1.bases.A, mine.fc1.bases.B
    assert torch.equal(A, theirs.vera_A["default"].float()) and torch.equal(B, theirs.vera_B["default"].float())
    # PEFT's statistics: uniform(±√(6/fan_in)), std √(2/fan_in) — 2.45x nn.Linear's a=√5 bound
    assert A.abs().max() <= math.sqrt(6 / 96) and A.std().item() == pytest.approx(math.sqrt(2 / 96), rel=0.1)
    assert B.abs().max() <= math.sqrt(6 / 7) and B.abs().max() > 1 / math.sqrt(7)
    x, target = torch.randn(16, 96), torch.randn(16, 96)
    before = mine(x).detach()
    for model in (theirs, mine):
        _sgd_steps(model, x, target)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), theirs(x), rtol=1e-5, atol=1e-6)
        assert (mine(x) - before).abs().max() > 1e-5  # the 3-step move: ~3e-5 with PEFT's bases


def _layer(model, name="fc1"):
    return getattr(model, name)


def test_authors_vision_convention_scales_and_inits():
    """PAPER.md §3b: lora_alpha = 1, s = α/r, ×10 for RandLoRA and VeRA; std-normalised VeRA/NoLA bases;
    NoLA coefficients 1/n; RandLoRA λ = 1/max(n, r), γ = 0, n = ⌊min_dim/r⌋ + 1."""
    def build(**cfg):
        model = Net()
        inject(model, dict(targets=["fc1", "fc2"], convention="authors_vision", **cfg))
        return model

    randlora = _layer(build(name="randlora", rank=6))
    assert randlora.scale == pytest.approx(10 / 6)
    assert randlora.num_bases == 40 // 6 + 1
    assert torch.all(randlora.randlora_gamma == 0)
    assert torch.all(randlora.randlora_lambda == 1 / max(randlora.num_bases, 6))
    assert _layer(build(name="lora", rank=32)).scale == pytest.approx(1 / 32)
    vera = _layer(build(name="vera", rank=256))
    assert vera.scale == pytest.approx(10 / 256)
    assert vera.bases.A.std().item() == pytest.approx(1.0, rel=1e-5)
    assert vera.bases.B.std().item() == pytest.approx(1.0, rel=1e-5)
    nola = _layer(build(name="nola", rank=1, num_bases=64))
    assert nola.scale == 1.0
    assert torch.all(nola.nola_alpha == 1 / 64) and torch.all(nola.nola_beta == 1 / 64)
    assert nola.bases.A.std().item() == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="adapter.scaling='peft' is invalid: allowed is authors_clip .or null. with adapter.convention=auth"):
        AdapterConfig(name="randlora", convention="authors_vision", scaling="peft", targets=["fc1"])


def test_ours_convention_is_unchanged_outside_the_paper_configs():
    model = Net()
    inject(model, dict(name="nola", rank=2, num_bases=16, targets=["fc1"]))
    assert torch.all(model.fc1.nola_alpha == 0) and model.fc1.scale == 1.0
    model = Net()
    inject(model, dict(name="randlora", rank=6, targets=["fc1"]))
    assert model.fc1.scale == 20.0 and model.fc1.num_bases == math.ceil(40 / 6)


def test_authors_llm_gamma_starts_at_one_over_min_dim():
    """Their layer sets γ = 1/max(d_in, d_out), then reset_randlora_parameters resets it to 1/min_dim."""
    model = Net()
    inject(model, dict(name="randlora", rank=4, scaling="authors_llm", targets=["fc1", "fc2"]))
    for layer in (model.fc1, model.fc2):
        assert torch.all(layer.randlora_gamma == 1 / 40) and torch.all(layer.randlora_lambda == 0)
        assert layer.scale == pytest.approx(2 * 4 / (4 * math.sqrt(10)))


def test_peft_convention_matches_peft_randlora_defaults():
    """PEFT's RandLoraConfig: randlora_alpha = 640 fixed; λ = 0, γ = 1/min_dim."""
    config = peft.RandLoraConfig(r=8, target_modules=["fc1"])
    assert config.randlora_alpha == 640
    torch.manual_seed(0)
    theirs = peft.get_peft_model(Net(), config).base_model.model.fc1
    model = Net()
    inject(model, dict(name="randlora", rank=8, scaling="peft", targets=["fc1"]))
    assert model.fc1.scale == pytest.approx(theirs.scaling["default"]) == pytest.approx(640 / 8)
    assert torch.all(model.fc1.randlora_gamma == 1 / 40) and torch.all(model.fc1.randlora_lambda == 0)


def test_very_sparse_probability_uses_peft_min_dim():
    """PEFT: P(±1) = 1/(2√d) with d = min(largest d_out, largest d_in) — 64 here, not the largest min side 8."""
    model = nn.Sequential(nn.Linear(64, 8), nn.Linear(8, 64))
    inject(model, dict(name="randlora", rank=4, basis="very_sparse", basis_seed=0, targets=["0", "1"]))
    bases = model[0].bases
    values = torch.cat([bases.A.flatten()] + [b.flatten() for _, b in bases.named_buffers() if _ != "A"])
    nonzero = (values != 0).float().mean().item()
    assert nonzero == pytest.approx(2 / (2 * math.sqrt(64)), abs=0.04)  # 0.125; 1/(2√8) would give 0.35
