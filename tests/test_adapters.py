"""The adapter library on tiny models: one table of (model, adapter) cases through the same checks."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from randlora.adapters import (AdapterConfig, adapter_layers, basis_checksum, count_parameters, inject,
                               load_adapter, merge, param_groups, predict_trainable, save_adapter, unmerge)
from randlora.adapters.randlora import RandLoRA

ADAPTERS = ["full", "lora", "loraplus", "vera", "nola", "randlora"]


class MLP(nn.Module):
    """Both orientations: fc1 widens (small side = input), fc2 narrows (small side = output)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 20)
        self.fc2 = nn.Linear(20, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.fc2(torch.relu(self.fc1(x))))


class TimmBlock(nn.Module):
    def __init__(self):
        super().__init__()
        from timm.models.vision_transformer import Block

        self.block = Block(dim=16, num_heads=2, mlp_ratio=2.0)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.block(x))


class ClipBlock(nn.Module):
    """open_clip's ResidualAttentionBlock shape: nn.MultiheadAttention + mlp.c_fc / mlp.c_proj."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.mlp = nn.Sequential()
        self.mlp.c_fc = nn.Linear(16, 32)
        self.mlp.gelu = nn.GELU()
        self.mlp.c_proj = nn.Linear(32, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return self.head(x + self.mlp(x))


class GPT2Block(nn.Module):
    def __init__(self):
        super().__init__()
        from transformers.pytorch_utils import Conv1D

        self.c_attn = Conv1D(48, 16)  # (nf = d_out, nx = d_in)
        self.c_proj = Conv1D(16, 48)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.c_proj(torch.tanh(self.c_attn(x))))


MODELS = {
    "mlp": (MLP, ["fc1", "fc2"], lambda: torch.randn(4, 12)),
    "timm": (TimmBlock, "vit", lambda: torch.randn(2, 5, 16)),
    "mha": (ClipBlock, "clip_all", lambda: torch.randn(2, 5, 16)),
    "conv1d": (GPT2Block, ["c_attn", "c_proj"], lambda: torch.randn(2, 5, 16)),
}


def make(model_name: str, adapter: str, **overrides):
    cls, targets, data = MODELS[model_name]
    torch.manual_seed(0)
    model = cls()
    cfg = dict(name=adapter, rank=4, targets=targets, trainable_extra=["head"], basis_seed=3, num_bases=None)
    if adapter == "nola":
        cfg["num_bases"] = 16
    cfg.update(overrides)
    torch.manual_seed(1)
    return model, cfg, data()


def adapter_params(model):
    return {n: p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head")}


def train_steps(model, x, steps=3):
    opt = torch.optim.AdamW(param_groups(model, lr=1e-2, weight_decay=0.0, lr_ratio=4.0), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()


CASES = [(m, a) for m in MODELS for a in ADAPTERS]


@pytest.mark.parametrize("model_name,adapter", CASES)
def test_adapter_contract(model_name, adapter, tmp_path):
    model, cfg, x = make(model_name, adapter)
    model.eval()
    reference = copy.deepcopy(model)
    with torch.no_grad():
        y0 = model(x)
    names = inject(model, cfg)
    assert names
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), y0, rtol=0, atol=1e-6, msg="output must be unchanged at init")

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if adapter == "full":
        assert trainable == set(before)
    else:
        assert all(n.startswith("head") or any(k in n for k in ("lora_", "vera_", "nola_", "randlora_"))
                   for n in trainable), trainable
        assert any(n.startswith("head") for n in trainable)
    train_steps(model, x)
    for n, p in model.named_parameters():
        changed = not torch.equal(p.detach(), before[n])
        if n in trainable and adapter != "full":
            assert changed, f"trainable {n} did not change"
        if n not in trainable:
            assert not changed, f"frozen {n} changed"

    model.eval()
    with torch.no_grad():
        y_unmerged = model(x)
        assert not torch.allclose(y_unmerged, y0), "training should have moved the output"
        weights = {n: p.detach().clone() for n, p in model.named_parameters()}
        merge(model)
        torch.testing.assert_close(model(x), y_unmerged, rtol=1e-4, atol=1e-5)
        unmerge(model)
        for n, p in model.named_parameters():
            torch.testing.assert_close(p, weights[n], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model(x), y_unmerged, rtol=1e-4, atol=1e-5)

    path = save_adapter(model, tmp_path / "adapter.safetensors")
    fresh = copy.deepcopy(reference)
    load_adapter(fresh, path)
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), y_unmerged, rtol=1e-5, atol=1e-6)
    assert count_parameters(fresh) == count_parameters(model)

    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    with torch.no_grad():
        out = bf16(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), y_unmerged, rtol=0.1, atol=0.1)


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("adapter", ["lora", "vera", "nola", "randlora"])
def test_trainable_count_matches_formula(model_name, adapter):
    model, cfg, _ = make(model_name, adapter)
    inject(model, cfg)
    config = AdapterConfig.from_any(cfg)
    head = sum(p.numel() for p in model.head.parameters())
    expected = head
    for layer, _ in adapter_layers(model):
        d_out, d_in, r = layer.d_out, layer.d_in, config.rank
        m = min(d_out, d_in)
        expected += {"lora": r * (d_in + d_out), "vera": r + d_out, "nola": 2 * 16,
                     "randlora": math.ceil(m / r) * (r + m)}[adapter]
    assert count_parameters(model)[0] == expected


def test_randlora_full_rank_lora_low_rank():
    for d_out, d_in in [(20, 12), (8, 20), (16, 16)]:
        cfg = AdapterConfig(name="randlora", rank=3, targets=["fc"])
        layer = RandLoRA(d_out, d_in, cfg, nn.Linear(d_in, d_out), RandLoRA.make_bases([(d_out, d_in)], cfg, "cpu"))
        with torch.no_grad():
            layer.randlora_lambda.normal_()
            layer.randlora_gamma.normal_()
        delta = layer.delta_weight()
        assert delta.shape == (d_out, d_in)
        assert torch.linalg.matrix_rank(delta) == min(d_out, d_in)
    model = MLP()
    inject(model, dict(name="lora", rank=3, targets=["fc1"]))
    with torch.no_grad():
        model.fc1.lora_B.normal_()
    assert torch.linalg.matrix_rank(model.fc1.delta_weight()) <= 3


def _randlora_layer(d_out, d_in, conv1d=False, bias=True, dtype=torch.float32):
    torch.manual_seed(0)
    cfg = AdapterConfig(name="randlora", rank=3, targets=["x"])
    if conv1d:
        from transformers.pytorch_utils import Conv1D

        base = Conv1D(d_out, d_in)
        base.bias.data.normal_()
    else:
        base = nn.Linear(d_in, d_out, bias=bias)
    base.requires_grad_(False)
    layer = RandLoRA(d_out, d_in, cfg, base, RandLoRA.make_bases([(d_out, d_in)], cfg, "cpu"))
    with torch.no_grad():
        layer.randlora_lambda.normal_()
        layer.randlora_gamma.normal_()
    return layer.to(dtype)


@pytest.mark.parametrize("shape", [(20, 12), (8, 20), (16, 16)])
@pytest.mark.parametrize("conv1d", [False, True])
def test_randlora_paths_agree_with_plain_formula(shape, conv1d):
    """Activation path, fused weight path and the plain y = W0 x + b + ΔW x give the same outputs and grads."""
    d_out, d_in = shape
    layer = _randlora_layer(d_out, d_in, conv1d)
    x0 = torch.randn(3, 7, d_in)
    results = {}
    for path in ["activation", "weight", "plain"]:
        layer.zero_grad()
        x = x0.clone().requires_grad_(True)
        if path == "plain":
            w0 = layer.base_weight()
            y = x @ (w0 + layer.delta_weight()).t() + layer.base_layer.bias
        else:
            layer.path = path
            y = layer(x)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        results[path] = (y.detach(), x.grad, layer.randlora_lambda.grad.clone(), layer.randlora_gamma.grad.clone())
    for path in ["activation", "weight"]:
        for got, want in zip(results[path], results["plain"]):
            torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)


def test_randlora_auto_path_picks_the_cheaper():
    layer = _randlora_layer(64, 64)
    layer.train()
    assert layer.choose_path(torch.randn(4096, 64)) == "weight"   # many tokens: form ΔW once
    assert layer.choose_path(torch.randn(2, 64)) == "activation"  # few tokens: go through activations
    with torch.no_grad():
        assert layer.choose_path(torch.randn(4096, 64)) == "weight"


def test_randlora_fused_path_under_autocast_and_bf16():
    layer = _randlora_layer(24, 16)
    layer.path = "weight"
    x = torch.randn(5, 16)
    reference = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    assert ((y.float() - reference).norm() / reference.norm()).item() < 0.02
    y.float().sum().backward()
    assert torch.isfinite(layer.randlora_gamma.grad).all()


@pytest.mark.parametrize("basis", ["dense", "sparse", "very_sparse"])
def test_bases_are_seeded_shared_and_normalised(basis):
    def build(seed):
        model = MLP()
        inject(model, dict(name="randlora", rank=4, targets=["fc1", "fc2"], basis=basis, basis_seed=seed))
        return model

    a, b, c = build(0), build(0), build(1)
    assert basis_checksum(a) == basis_checksum(b) != basis_checksum(c)
    assert a.fc1.bases is a.fc2.bases  # one copy shared by every layer
    A = a.fc1.bases.A
    assert abs(A.std().item() - 1) < 1e-4
    values = set(torch.unique(a.fc1.bases.A * a.fc1.bases.A.std() if basis == "dense" else A.sign()).tolist())
    if basis != "dense":
        assert values <= {-1.0, 0.0, 1.0}
    # buffers never reach the state dict
    assert not any("bases" in k for k in a.state_dict())


def test_randlora_num_bases_rules_and_conventions():
    cfg = AdapterConfig(name="randlora", rank=6, targets=["x"])
    assert RandLoRA.num_trainable(2304, 768, cfg) == 128 * (6 + 768)
    cfg2 = AdapterConfig(name="randlora", rank=6, targets=["x"], num_bases_rule="floor_plus_one")
    assert RandLoRA.num_trainable(2304, 768, cfg2) == 129 * (6 + 768)
    for scaling, lam_zero in [("peft", True), ("authors_llm", True), ("authors_clip", False)]:
        c = AdapterConfig(name="randlora", rank=4, targets=["fc1"], scaling=scaling)
        layer = RandLoRA(20, 12, c, nn.Linear(12, 20), RandLoRA.make_bases([(20, 12)], c, "cpu"))
        assert bool((layer.randlora_lambda == 0).all()) == lam_zero
        assert bool((layer.randlora_gamma == 0).all()) != lam_zero
        assert torch.count_nonzero(layer.delta_weight()) == 0
    peft = RandLoRA(20, 12, AdapterConfig(name="randlora", rank=4, targets=["x"]), nn.Linear(12, 20),
                    RandLoRA.make_bases([(20, 12)], AdapterConfig(name="randlora", rank=4, targets=["x"]), "cpu"))
    assert peft.scale == 20.0 and torch.allclose(peft.randlora_gamma, torch.tensor(1 / 12))


def test_param_groups_loraplus_and_decay():
    model = TimmBlock()
    inject(model, dict(name="loraplus", rank=2, targets="vit", trainable_extra=["head", "block.norm1"]))
    groups = {g["name"]: g for g in param_groups(model, lr=1e-3, weight_decay=0.1, lr_ratio=16)}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)].rsplit(".", 1)[-1] for p in groups["lora_B"]["params"]} == {"lora_B"}
    assert groups["lora_B"]["lr"] == pytest.approx(16e-3) and groups["lora_B"]["weight_decay"] == 0.1
    no_decay = {names[id(p)] for p in groups["no_decay"]["params"]}
    assert no_decay == {"head.bias", "block.norm1.weight", "block.norm1.bias"}
    assert all("lora_A" in names[id(p)] or names[id(p)] == "head.weight" for p in groups["decay"]["params"])
    total = sum(p.numel() for g in groups.values() for p in g["params"])
    assert total == count_parameters(model)[0]


def test_inject_errors_are_clear():
    with pytest.raises(ValueError, match=r"matched no nn.Linear.*Adaptable modules look like"):
        inject(MLP(), dict(name="lora", targets=["q_proj"]))
    with pytest.raises(ValueError, match="adapter.rank=0"):
        inject(MLP(), dict(name="lora", rank=0, targets=["fc1"]))
    with pytest.raises(ValueError, match="adapter.name='dora'"):
        AdapterConfig.from_any({"name": "dora"})
    with pytest.raises(ValueError, match="adapter.dropout=1.0"):
        AdapterConfig(name="lora", dropout=1.0)
    with pytest.raises(ValueError, match="adapter.basis='gaussian'"):
        AdapterConfig(basis="gaussian")
    with pytest.raises(ValueError, match="unknown adapter config key"):
        AdapterConfig.from_any({"name": "lora", "rnak": 3})
    with pytest.raises(ValueError, match="trainable_extra entry 'classifier'"):
        inject(MLP(), dict(name="lora", targets=["fc1"], trainable_extra=["classifier"]))
    model = MLP()
    inject(model, dict(name="lora", targets=["fc1"]))
    with pytest.raises(ValueError, match="already has an adapter"):
        inject(model, dict(name="lora", targets=["fc2"]))


def test_targets_by_regex_and_meta_device():
    model = MLP()
    assert inject(model, dict(name="lora", rank=2, targets=r"fc\d")) == ["fc1", "fc2"]
    with torch.device("meta"):
        meta = TimmBlock()
    names = inject(meta, dict(name="randlora", rank=4, targets="vit"))
    assert names == ["block.attn.qkv", "block.mlp.fc1", "block.mlp.fc2"]
    assert basis_checksum(meta) is None
    assert count_parameters(meta)[0] == predict_trainable(TimmBlock(), dict(name="randlora", rank=4, targets="vit"))


def test_load_refuses_wrong_model_checksum_and_truncation(tmp_path):
    model = MLP()
    inject(model, dict(name="randlora", rank=4, targets=["fc1", "fc2"], basis_seed=5))
    path = save_adapter(model, tmp_path / "a.safetensors")
    other = nn.Sequential()
    other.fc1, other.fc2, other.head = nn.Linear(12, 20), nn.Linear(20, 8), nn.Linear(8, 4)
    with pytest.raises(ValueError, match="another base model"):
        load_adapter(other, path)
    wrong = MLP()
    inject(wrong, dict(name="lora", rank=4, targets=["fc1", "fc2"]))
    with pytest.raises(ValueError, match="different adapter"):
        load_adapter(wrong, path)
    # A file whose stored checksum no longer matches the regenerated bases.
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta["basis_checksum"] = "sha256:" + "0" * 64
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="checksum"):
        load_adapter(MLP(), tmp_path / "bad.safetensors")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a complete safetensors file"):
        load_adapter(MLP(), tmp_path / "cut.safetensors")
    assert not list(tmp_path.glob(".*.tmp")), "atomic save leaves no temporary file"


def _rewrite(path, out, **metadata_changes):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta.update(metadata_changes)
    meta = {k: v for k, v in meta.items() if v is not None}
    save_file(tensors, str(out), metadata=meta)
    return out


@pytest.mark.parametrize("name", ["lora", "vera", "nola", "randlora"])
def test_adapter_file_stores_each_layer_scale_and_refuses_a_changed_one(tmp_path, name):
    import json

    from randlora.adapters.save import layer_scales, read_adapter_metadata

    model = MLP()
    inject(model, dict(name=name, rank=4, targets=["fc1", "fc2"]))
    path = save_adapter(model, tmp_path / "a.safetensors")
    stored = json.loads(read_adapter_metadata(path)["layer_scales"])
    assert stored == layer_scales(model) and set(stored) == {"fc1", "fc2"}
    load_adapter(MLP(), path)  # the same code resolves the same scales
    # The config's defaults now resolve to another scale than the one the file was trained with.
    changed = _rewrite(path, tmp_path / "changed.safetensors",
                       layer_scales=json.dumps({**stored, "fc2": stored["fc2"] * 2}))
    with pytest.raises(ValueError, match=r"trained with scale .* on fc2, but its config .* gives"):
        load_adapter(MLP(), changed)


def test_adapter_file_without_scales_refused_only_where_a_default_changed(tmp_path):
    # RandLoRA scaling=peft, alpha=null meant 20*rank before e3d083b and 640 since: ambiguous, refused.
    model = MLP()
    inject(model, dict(name="randlora", rank=4, targets=["fc1", "fc2"], scaling="peft"))
    old = _rewrite(save_adapter(model, tmp_path / "a.safetensors"), tmp_path / "old.safetensors",
                   layer_scales=None)
    with pytest.raises(ValueError, match="predates stored scales: alpha=null meant 20\\*rank"):
        load_adapter(MLP(), old)
    # An explicit alpha, or a default that never changed, still loads.
    for config in (dict(name="randlora", rank=4, targets=["fc1", "fc2"], scaling="peft", alpha=640),
                   dict(name="lora", rank=4, targets=["fc1", "fc2"])):
        base = MLP()
        model = copy.deepcopy(base)
        inject(model, config)
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.1)
        old = _rewrite(save_adapter(model, tmp_path / "b.safetensors"), tmp_path / "old_b.safetensors",
                       layer_scales=None)
        loaded = copy.deepcopy(base)
        load_adapter(loaded, old)
        x = torch.randn(3, 12)
        torch.testing.assert_close(loaded(x), model(x))


def test_every_entry_of_a_target_list_must_adapt_something():
    # One entry that matches nothing (a typo, or a layer the backbone split into parts) is an error, not a
    # silently smaller adapter.
    with pytest.raises(ValueError, match=r"adapter.targets entry 'fc3' matched no nn.Linear.*while others did"):
        inject(MLP(), dict(name="lora", rank=2, targets=["fc1", "fc3"]))
    model = nn.Sequential()
    model.attn = nn.Module()
    model.attn.c_attn = nn.Module()  # a container, as GPT-2's c_attn after backbone.split_fused_qkv
    model.attn.c_attn.q = nn.Linear(8, 8)
    model.fc = nn.Linear(8, 8)
    with pytest.raises(ValueError, match=r"'attn.c_attn' matched no .*it names \['attn.c_attn \(Module\)'\]"):
        inject(model, dict(name="lora", rank=2, targets=["attn.c_attn", "fc"]))
    assert inject(model, dict(name="lora", rank=2, targets=["c_attn.q", "fc"])) == ["attn.c_attn.q", "fc"]
