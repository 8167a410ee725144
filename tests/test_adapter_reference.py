"""Our adapters against the references: the paper's parameter pairings and PEFT's outputs.

Index mapping to PEFT's RandLoRA (peft/tuners/randlora), used below:
    PEFT stores A as (r, 1, m_max), B as (M_max, n_max, r), λ as (r, n), γ as (n, m), and pairs row
    ρ = k·n + b of its scaled bases (λ[k, b] · A[k] ⊙ γ[b]) with column ρ of B[:M, :n, :].reshape(M, n·r),
    i.e. with B[:, ρ // r, ρ % r]. Ours pairs row j·r + k (λ[j, k] · A[k] ⊙ γ[j]) with column j·r + k of our
    flat B. So: our A = PEFT A[:, 0, :m_max]; our λ = PEFT λᵀ; our γ = PEFT γ; and our flat B column
    j·r + k = PEFT flat B column k·n + j. Both are random bases; the permutation only says which random
    column meets which scaled row.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from randlora.adapters import count_parameters, inject, match_rank, predict_trainable


def _meta_llama(hidden, intermediate, layers, heads, kv_heads, tied):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=128256,
                      tie_word_embeddings=tied)
    with torch.device("meta"):
        return LlamaForCausalLM(cfg)


def llama3_8b():
    return _meta_llama(4096, 14336, 32, 32, 8, tied=False)


def llama32_3b():
    return _meta_llama(3072, 8192, 28, 24, 8, tied=True)


def test_llama3_8b_pairings_on_meta_device():
    model = llama3_8b()
    assert count_parameters(model)[1] == 8_030_261_248
    randlora = copy.deepcopy(model)
    inject(randlora, dict(name="randlora", rank=30, targets="llm"))
    assert count_parameters(randlora)[0] == 56_626_112  # paper: 56.63M
    lora = copy.deepcopy(model)
    inject(lora, dict(name="lora", rank=32, targets="llm"))
    assert count_parameters(lora)[0] == 56_623_104  # paper: 56.62M
    assert round(predict_trainable(model, dict(name="randlora", rank=60, targets="llm")) / 1e6, 1) == 28.8
    assert round(predict_trainable(model, dict(name="lora", rank=16, targets="llm")) / 1e6, 1) == 28.3
    assert round(predict_trainable(model, dict(name="randlora", rank=15, targets="llm")) / 1e6, 1) == 112.7
    assert round(predict_trainable(model, dict(name="lora", rank=64, targets="llm")) / 1e6, 1) == 113.2


def test_llama32_3b_pairings_on_meta_device():
    model = llama32_3b()
    counts = {}
    for name, rank in [("randlora", 32), ("lora", 32), ("vera", 256)]:
        m = copy.deepcopy(model)
        inject(m, dict(name=name, rank=rank, targets="llm_qv"))
        counts[name] = count_parameters(m)[0]
    assert counts == {"randlora": 9_289_728, "lora": 9_175_040, "vera": 129_024}


@pytest.mark.parametrize("arch,adapter,rank,expected", [
    ("ViT-B-32", "randlora", 6, 5.20), ("ViT-B-32", "lora", 32, 6.88), ("ViT-B-32", "vera", 256, 0.14),
    ("ViT-L-14", "randlora", 8, 12.3), ("ViT-L-14", "lora", 32, 15.1),
])
def test_clip_pairings_with_in_proj_adapted(arch, adapter, rank, expected):
    """The paper's CLIP counts hold only with q/k/v (in_proj) adapted and the authors' ⌊m/r⌋+1 bases."""
    import open_clip

    model = open_clip.create_model(arch, pretrained=None, device="meta")
    cfg = dict(name=adapter, rank=rank, targets="clip_all", num_bases_rule="floor_plus_one")
    digits = 2 if expected < 10 else 1
    assert round(predict_trainable(model, cfg) / 1e6, digits) == expected


def test_match_rank_finds_the_paper_pairing():
    model = llama3_8b()
    rank, count = match_rank(model, dict(name="randlora", targets="llm"), 56_623_104, ranks=range(10, 80))
    assert rank == 30 and count == 56_626_112
    rank, _ = match_rank(lambda: llama3_8b(), dict(name="lora", targets="llm"), 28_800_000, ranks=range(1, 65))
    assert rank == 16


def test_match_rank_stays_within_the_layers():
    """Without a rank range, ranks stop at the smallest adapted side: a 64-wide network's budget of 1024 is
    RandLoRA rank 10 (7 bases per layer, 1036 parameters), not one 448-rank basis per layer (exactly 1024)."""
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    assert match_rank(model, dict(name="randlora", targets=["0", "2"]), 1024) == (10, 1036)
    assert match_rank(model, dict(name="lora", targets=["0", "2"]), 10**6) == (64, 2 * 64 * 128)


# --- equivalence with PEFT ---------------------------------------------------------------------------------
peft = pytest.importorskip("peft")


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 20)
        self.fc2 = nn.Linear(20, 8)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def _pair(peft_config, ours):
    torch.manual_seed(0)
    base = TwoLayer()
    theirs = peft.get_peft_model(copy.deepcopy(base), peft_config).base_model
    mine = copy.deepcopy(base)
    inject(mine, ours)
    return theirs, mine


def _compare(theirs, mine):
    x = torch.randn(6, 12)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), theirs(x), rtol=1e-4, atol=1e-4)


def test_lora_matches_peft():
    theirs, mine = _pair(peft.LoraConfig(r=4, lora_alpha=8, target_modules=["fc1", "fc2"]),
                         dict(name="lora", rank=4, alpha=8, targets=["fc1", "fc2"]))
    with torch.no_grad():
        for name in ["fc1", "fc2"]:
            t, m = getattr(theirs.model, name), getattr(mine, name)
            t.lora_B["default"].weight.normal_()
            m.lora_A.copy_(t.lora_A["default"].weight)
            m.lora_B.copy_(t.lora_B["default"].weight)
    _compare(theirs, mine)


def test_vera_matches_peft():
    theirs, mine = _pair(peft.VeraConfig(r=4, target_modules=["fc1", "fc2"], projection_prng_key=0),
                         dict(name="vera", rank=4, targets=["fc1", "fc2"]))
    with torch.no_grad():
        mine.fc1.bases.A.copy_(theirs.vera_A["default"].float())
        mine.fc1.bases.B.copy_(theirs.vera_B["default"].float())
        for name in ["fc1", "fc2"]:
            t, m = getattr(theirs.model, name), getattr(mine, name)
            t.vera_lambda_b["default"].normal_()
            t.vera_lambda_d["default"].normal_()
            m.vera_lambda_b.copy_(t.vera_lambda_b["default"])
            m.vera_lambda_d.copy_(t.vera_lambda_d["default"])
    _compare(theirs, mine)


def test_randlora_matches_peft_with_index_mapping():
    r = 4
    theirs, mine = _pair(peft.RandLoraConfig(r=r, randlora_alpha=40, target_modules=["fc1", "fc2"]),
                         dict(name="randlora", rank=r, alpha=40, targets=["fc1", "fc2"]))
    A_peft = theirs.randlora_A["default"].float()  # (r, 1, m_max)
    B_peft = theirs.randlora_B["default"].float()  # (M_max, n_max, r)
    with torch.no_grad():
        bases = mine.fc1.bases
        bases.A.copy_(A_peft[:, 0, : bases.A.shape[1]])
        for name in ["fc1", "fc2"]:
            t, m = getattr(theirs.model, name), getattr(mine, name)
            n, M = m.num_bases, m.d_large
            peft_flat = B_peft[:M, :n, :].reshape(M, n * r)
            ours = torch.tensor([k * n + j for j in range(n) for k in range(r)])
            getattr(bases, f"B_{M}_{n}").copy_(peft_flat[:, ours])
            t.randlora_lambda["default"].normal_()
            t.randlora_gamma["default"].normal_()
            m.randlora_lambda.copy_(t.randlora_lambda["default"].t())
            m.randlora_gamma.copy_(t.randlora_gamma["default"])
    for path in ["activation", "weight"]:
        mine.fc1.path = mine.fc2.path = path
        _compare(theirs, mine)
