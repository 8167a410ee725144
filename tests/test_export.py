"""Export to PEFT and to merged models, import from PEFT: outputs elsewhere equal ours.

Tolerances: PEFT export/import atol 1e-5, rtol 1e-4 (float32, same ΔW summed in another order; observed
≤ 6e-6 on logits of size ~1); merged export atol 1e-5, rtol 1e-4 (W0 + ΔW rounded once to float32).
Every case also checks that the adapter moves the outputs (by far more than the tolerance), so equality
cannot come from an adapter that does nothing.
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers_export import make_run, run_config
from randlora.adapters import load_adapter
from randlora.export import NotExpressible, export_merged, export_peft, import_peft, load_run
from randlora.export.cli import main as cli_main
from randlora.export.source import build_base

peft = pytest.importorskip("peft")
TOL = dict(atol=1e-5, rtol=1e-4)
# (backbone, adapter, overrides): rank 3 on 20-wide layers gives n = 7 RandLoRA bases per layer
# One case per adapter and backbone runs by default; the other six are marked slow.
DEFAULT = {("tiny_llama", "randlora"), ("tiny_bert", "vera"), ("tiny_vit", "lora")}
CASES = [pytest.param(backbone, adapter, [f"adapter.rank={3 if adapter == 'randlora' else 4}"],
                      marks=() if (backbone, adapter) in DEFAULT else pytest.mark.slow)
         for backbone in ("tiny_llama", "tiny_bert", "tiny_vit") for adapter in ("lora", "vera", "randlora")]
# The authors' vision convention: VeRA and RandLoRA scaled x10, RandLoRA's authors_clip init and floor(m/r)+1 bases
CASES += [pytest.param("tiny_vit", adapter, [f"adapter.rank={3 if adapter == 'randlora' else 4}",
                                              "adapter.convention=authors_vision"],
                       marks=() if adapter == "vera" else pytest.mark.slow, id=f"tiny_vit-{adapter}-authors_vision")
          for adapter in ("vera", "randlora")]


def inputs(backbone, model):
    if backbone in ("tiny_vit", "tiny_clip"):
        return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    return dict(model.tokenizer(["the correct answer is true", "hello there"], return_tensors="pt", padding=True))


def logits(backbone, model, x):
    with torch.no_grad():
        return model(**x).logits if backbone == "tiny_llama" else model(x)


def peft_base(backbone, base):
    """The model a PEFT user loads: transformers model, or timm model with num_classes (its head restored)."""
    if backbone == "tiny_vit":
        base.encoder.reset_classifier(base.head.out_features)
        return base.encoder
    return base.model if backbone == "tiny_llama" else base.encoder


def peft_logits(backbone, base, folder, x):
    """Logits through PeftModel.from_pretrained(base, folder); BERT's head and pooling are ours (head file)."""
    model = peft.PeftModel.from_pretrained(peft_base(backbone, base), str(folder)).eval()
    if backbone == "tiny_bert":  # base.encoder is now PEFT-wrapped in place; our head from head.safetensors
        base.head.load_state_dict(load_file(str(folder / "head.safetensors")))
        model = base
    return logits(backbone, model, x)


@pytest.mark.parametrize("backbone,adapter,overrides", CASES)
def test_peft_export_loads_in_peft_with_our_outputs(tmp_path, backbone, adapter, overrides):
    run = load_run(make_run(tmp_path, backbone, adapter, overrides))
    x = inputs(backbone, run.backbone)
    ours = logits(backbone, run.backbone, x)
    sizes = export_peft(run, tmp_path / "peft")
    base = build_base(run.config)
    assert (logits(backbone, base, x) - ours).abs().max() > 1e-2
    torch.testing.assert_close(peft_logits(backbone, base, tmp_path / "peft", x), ours, **TOL)
    provenance = json.loads((tmp_path / "peft" / "provenance.json").read_text())
    assert provenance["run_id"] == f"test_{backbone}_{adapter}" and provenance["metrics"] == {"test/acc": 0.5}
    assert provenance["config"]["backbone"]["name"] == backbone
    assert (provenance["basis_checksum"] or "").startswith("sha256:") == (adapter != "lora")
    if adapter == "randlora":  # PEFT stores the projections (once per layer): much larger than ours
        assert sizes["peft_adapter_bytes"] > 5 * sizes["our_adapter_bytes"]


def test_peft_export_folds_the_authors_scale_and_fewer_bases(tmp_path):
    """authors_llm's s = α/(r√n) is folded into λ; num_bases below PEFT's ⌈m/r⌉ pads λ with zeros."""
    run = load_run(make_run(tmp_path, "tiny_llama", "randlora",
                            ["adapter.rank=3", "adapter.scaling=authors_llm", "adapter.num_bases=5"]))
    x = inputs("tiny_llama", run.backbone)
    ours = logits("tiny_llama", run.backbone, x)
    export_peft(run, tmp_path / "peft")
    torch.testing.assert_close(peft_logits("tiny_llama", build_base(run.config), tmp_path / "peft", x), ours, **TOL)


def test_peft_export_refuses_what_peft_cannot_express(tmp_path):
    gqa = make_run(tmp_path, "tiny_llama", "randlora",
                   ["adapter.rank=3", "+backbone.model_kwargs.num_key_value_heads=1"])
    with pytest.raises(NotExpressible, match=r"k_proj.*need different layouts; use --format merged"):
        export_peft(load_run(gqa), tmp_path / "gqa")
    with pytest.raises(NotExpressible, match=r"'nola'.*PEFT has no NoLA.*--format merged"):
        export_peft(load_run(make_run(tmp_path, "tiny_bert", "nola")), tmp_path / "nola")
    clip = make_run(tmp_path, "tiny_clip", "vera", ["adapter.rank=4"])
    with pytest.raises(NotExpressible, match=r"in_proj_weight \(clip\.visual\.transformer\.resblocks\.0\.attn.*merged"):
        export_peft(load_run(clip), tmp_path / "clip")
    assert not any(p.name.startswith(("gqa", "nola", "clip", ".")) for p in tmp_path.iterdir() if p.is_dir()
                   and not (p / "result.json").exists())


@pytest.mark.parametrize("backbone", ["tiny_llama", pytest.param("tiny_bert", marks=pytest.mark.slow), "tiny_vit",
                                      pytest.param("tiny_clip", marks=pytest.mark.slow)])
def test_merged_export_reloads_with_the_adapted_outputs(tmp_path, backbone):
    run = load_run(make_run(tmp_path, backbone, "randlora", ["adapter.rank=3"]))
    x = inputs(backbone, run.backbone)
    ours = logits(backbone, run.backbone, x)
    out = export_merged(run, tmp_path / "merged")
    if backbone == "tiny_llama":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(out).eval()
        assert AutoTokenizer.from_pretrained(out)("hello there")["input_ids"] == \
            run.backbone.tokenizer("hello there")["input_ids"]
        reloaded = logits(backbone, model, x)
    elif backbone == "tiny_bert":
        from transformers import AutoModel

        base = build_base(run.config)
        base.encoder = AutoModel.from_pretrained(out).eval()
        base.head.load_state_dict(load_file(str(out / "head.safetensors")))
        reloaded = logits(backbone, base.eval(), x)
    elif backbone == "tiny_vit":
        import timm

        # The README's reload command: timm's `local-dir:` reads config.json and model.safetensors from the folder
        # (no hub access; the suite runs with HF_HUB_OFFLINE=1).
        reloaded = logits(backbone, timm.create_model(f"local-dir:{out}", pretrained=True).eval(), x)
    else:
        import open_clip

        provenance = json.loads((out / "provenance.json").read_text())
        model = open_clip.create_model(provenance["open_clip_name"], pretrained=str(out / provenance["weights_file"]),
                                       **provenance["open_clip_kwargs"]).eval()
        base = build_base(run.config).eval()
        base.clip = model
        reloaded = logits(backbone, base, x)
    assert (logits(backbone, build_base(run.config).eval(), x) - ours).abs().max() > 1e-2
    torch.testing.assert_close(reloaded, ours, **TOL)
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["format"] == "merged" and provenance["run_id"] == f"test_{backbone}_randlora"
    assert provenance["basis_checksum"] == run.result["basis_checksum"]


IMPORT_CASES = [  # GQA LLaMA: RandLoRA layers with different n; ViT: a head in modules_to_save
    ("tiny_llama", "randlora", ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"], None),
    pytest.param("tiny_llama", "lora", ["q_proj", "v_proj"], None, marks=pytest.mark.slow),
    pytest.param("tiny_bert", "vera", ["query", "value", "intermediate.dense"], None, marks=pytest.mark.slow),
    pytest.param("tiny_vit", "lora", ["qkv", "fc1", "fc2"], ["head"], marks=pytest.mark.slow),
    pytest.param("tiny_vit", "randlora", ["qkv", "fc1", "fc2"], ["head"], marks=pytest.mark.slow),
]


@pytest.mark.parametrize("backbone,adapter,targets,heads", IMPORT_CASES)
def test_import_gives_peft_outputs(tmp_path, backbone, adapter, targets, heads):
    """A PEFT adapter trained elsewhere (random values) -> our adapter file -> PEFT's outputs."""
    overrides = ["+backbone.model_kwargs.num_key_value_heads=1"] if backbone == "tiny_llama" else []
    config = run_config(backbone, adapter, overrides)
    base = build_base(config)
    kwargs = dict(r=3, target_modules=targets, modules_to_save=heads)
    peft_config = {"lora": peft.LoraConfig(lora_alpha=5, **kwargs), "vera": peft.VeraConfig(**kwargs),
                   "randlora": peft.RandLoraConfig(randlora_alpha=30, **kwargs)}[adapter]
    theirs = peft.get_peft_model(peft_base(backbone, base), peft_config)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in theirs.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    theirs.save_pretrained(str(tmp_path / "peft"))
    x = inputs(backbone, base)
    theirs.eval()
    with torch.no_grad():  # BERT: compare the encoder (a PEFT folder from elsewhere has no head of ours)
        expected = theirs(**x).last_hidden_state if backbone == "tiny_bert" else logits(backbone, theirs, x)
    out = import_peft(tmp_path / "peft", config, tmp_path / "ours")
    ours = build_base(config).eval()
    load_adapter(ours, out / "adapter.safetensors")
    with torch.no_grad():
        got = ours.encoder(**x).last_hidden_state if backbone == "tiny_bert" else logits(backbone, ours, x)
    torch.testing.assert_close(got, expected, **TOL)
    assert json.loads((out / "import.json").read_text())["status"] == "imported"


def test_cli_refuses_in_one_line_and_writes_nothing(tmp_path, capsys):
    run_dir = make_run(tmp_path, "tiny_bert", "nola")
    assert cli_main([str(run_dir), "--format", "peft", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--format merged" in err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    assert cli_main([str(run_dir), "--format", "merged", "--out", str(tmp_path / "out")]) == 0
    assert cli_main([str(run_dir), "--format", "merged", "--out", str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_peft_export_of_clip_lora_uses_peft_multihead_attention(tmp_path):
    """open_clip's in_proj LoRA becomes PEFT's MultiheadAttention LoRA (its out_proj LoRA stays zero)."""
    run = load_run(make_run(tmp_path, "tiny_clip", "lora", ["adapter.rank=4"]))
    x = inputs("tiny_clip", run.backbone)
    ours = logits("tiny_clip", run.backbone, x)
    export_peft(run, tmp_path / "peft")
    base = build_base(run.config).eval()
    assert (logits("tiny_clip", base, x) - ours).abs().max() > 1e-2
    peft.PeftModel.from_pretrained(base.clip, str(tmp_path / "peft")).eval()  # wraps base.clip in place
    torch.testing.assert_close(logits("tiny_clip", base, x), ours, **TOL)


@pytest.mark.slow
@pytest.mark.parametrize("export_format", ["merged", "peft"])
def test_clip_linear_head_travels_as_a_file(tmp_path, export_format):
    """CLIP's linear head mode keeps only the image tower: the export puts it into a whole open_clip model and
    the head into head.safetensors; logits = head(normalize(encode_image(x)))."""
    import open_clip

    from randlora.export.source import full_clip

    run = load_run(make_run(tmp_path, "tiny_clip", "lora", ["adapter.rank=3", "backbone.head=linear"]))
    x = inputs("tiny_clip", run.backbone)
    ours = logits("tiny_clip", run.backbone, x)
    out = tmp_path / export_format
    if export_format == "merged":
        export_merged(run, out)
        provenance = json.loads((out / "provenance.json").read_text())
        model = open_clip.create_model(provenance["open_clip_name"], pretrained=str(out / provenance["weights_file"]),
                                       **provenance["open_clip_kwargs"])
    else:
        export_peft(run, out)
        base = build_base(run.config)
        model = peft.PeftModel.from_pretrained(full_clip(base, run.config), str(out))
    head = torch.nn.Linear(32, 3)
    head.load_state_dict(load_file(str(out / "head.safetensors")))
    with torch.no_grad():
        reloaded = head(torch.nn.functional.normalize(model.eval().encode_image(x), dim=-1))
    torch.testing.assert_close(reloaded, ours, **TOL)


@pytest.mark.slow
def test_a_trained_run_folder_exports(tmp_path):
    """End to end: train.py's own run folder (debug=fast, tiny BERT, RandLoRA) -> PEFT folder with our logits."""
    from helpers_training import training_config, write_tweets_csv
    from randlora.train import train

    csv = write_tweets_csv(tmp_path / "tweets.csv")
    cfg = training_config(tmp_path, ["backbone=tiny_bert", "task=tweets", f"task.path={csv}", "task.train_size=64",
                                     "task.val_size=16", "task.test_size=16", "adapter=randlora", "adapter.rank=8"])
    assert train(cfg)["status"] == "ok"
    run = load_run(tmp_path / "run")
    x = inputs("tiny_bert", run.backbone)
    ours = logits("tiny_bert", run.backbone, x)
    export_peft(run, tmp_path / "peft")
    torch.testing.assert_close(peft_logits("tiny_bert", build_base(run.config), tmp_path / "peft", x), ours, **TOL)


def test_stored_bases_travel_with_the_adapter_file_and_are_checked(tmp_path):
    """Bases no seed regenerates are saved in the adapter file; an edited stored basis fails the checksum."""
    from safetensors.torch import save_file
    from torch import nn

    from randlora.adapters import basis_checksum, inject, save_adapter
    from randlora.adapters.save import read_adapter_metadata, shared_bases

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 4))

    adapted = model()
    inject(adapted, dict(name="randlora", rank=2, targets=["0", "2"]))
    bases = shared_bases(adapted)
    bases.replace({name: torch.randn(b.shape) for name, b in bases.named_buffers(recurse=False)})
    with torch.no_grad():
        adapted[0].randlora_lambda.normal_()
    path = save_adapter(adapted, tmp_path / "a.safetensors")
    x = torch.randn(3, 6)
    fresh = model()
    load_adapter(fresh, path)
    assert basis_checksum(fresh) == basis_checksum(adapted)
    torch.testing.assert_close(fresh(x), adapted(x))
    tensors = load_file(str(path))
    tensors["bases.A"] = tensors["bases.A"] + 1
    save_file(tensors, str(tmp_path / "edited.safetensors"), metadata=read_adapter_metadata(path))
    with pytest.raises(ValueError, match="checksum"):
        load_adapter(model(), tmp_path / "edited.safetensors")


def test_gpt2_with_split_qkv_exports_merged_as_a_stock_gpt2_and_refuses_peft(tmp_path, monkeypatch):
    """E2E's adapters on c_attn.q / c_attn.v (backbone.split_fused_qkv): saved and loaded with the split backbone,
    merged back into one fused Conv1D that transformers loads as plain GPT-2; PEFT has no form for them."""
    import helpers_export
    from transformers import AutoModelForCausalLM

    monkeypatch.setitem(helpers_export.TASKS, "tiny_gpt2", "e2e_nlg")
    monkeypatch.setitem(helpers_export.ODD_SHAPES, "tiny_gpt2", [])
    overrides = ["backbone.split_fused_qkv=true", "adapter.targets=gpt2_qv_mlp", "adapter.rank=4"]
    run_dir = make_run(tmp_path, "tiny_gpt2", "randlora", overrides)
    with pytest.raises(NotExpressible, match=r"c_attn\.q / c_attn\.v .*use --format merged"):
        export_peft(load_run(run_dir), tmp_path / "peft")
    run = load_run(run_dir)
    x = dict(run.backbone.tokenizer(["name : Aromi | food : Chinese ||", "hi"], return_tensors="pt", padding=True))
    with torch.no_grad():
        ours = run.backbone(**x).logits
        base = build_base(run.config).eval()(**x).logits
    assert (ours - base).abs().max() > 1e-2
    out = export_merged(run, tmp_path / "merged")
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(model.transformer.h[0].attn.c_attn).__name__ == "Conv1D"
    with torch.no_grad():
        torch.testing.assert_close(model(**x).logits, ours, **TOL)
