"""What the benchmark measures: workloads (model, batch, loss, targets) and the cases (methods) run on each.

Every workload is a random-initialised model and a random batch (nothing is downloaded):
    vit       timm VisionTransformer, ViT-B/16 shape (width 768, 12 heads, MLP 3072) with 2 blocks, batch 32 × 197
              tokens, cross-entropy over 100 classes; targets attn.qkv, mlp.fc1, mlp.fc2.
    clip      open_clip CLIP, ViT-B/32 shape: vision tower width 768 (50 tokens per image), text tower width 512
              (77 tokens), 1 layer each, batch 128 images against 32 class prompts (classification by cosine
              similarity, both towers trained); targets clip_all (attention in_proj through a parametrization,
              mlp.c_fc, mlp.c_proj). PEFT's VeRA and RandLoRA cannot adapt nn.MultiheadAttention: their rows
              keep PEFT's own error message with status "unsupported"; PEFT's LoRA can and is measured.
    clip_mlp  the same model with targets clip_mlp (all PEFT can adapt): LoRA, VeRA, RandLoRA, ours and PEFT's.
    llama     transformers LlamaForCausalLM, width 2048, MLP 8192, 32 heads (8 key-value heads), 2 layers,
              vocabulary 32000, batch 1 × 256 tokens, next-token loss; targets q, k, v, up, down.
`make_workload(name, tiny, layers)` builds one; `tiny` shrinks every shape for the tests, `layers` sets the depth.

Methods, with identical frozen weights and batch: FT (every parameter), LoRA r=32 (α = 2r), LoRA+ (same layers,
lr ratio 16), VeRA r=256, NoLA (1024 rank-1 bases), RandLoRA dense and sparse with the rank whose trainable count
is closest to LoRA r=32's (`match_rank`), and PEFT's LoRA, VeRA and RandLoRA with the same ranks and scales.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from randlora.adapters import match_rank, predict_trainable

WORKLOADS = ("vit", "clip", "clip_mlp", "llama")
LORA_RANK, VERA_RANK, NOLA_BASES, LORAPLUS_RATIO = 32, 256, 1024, 16.0


@dataclass
class Workload:
    """A model factory, a batch factory and a loss, plus what to adapt in it."""

    name: str
    build: Callable[[], nn.Module]
    make_batch: Callable[[int, torch.device], dict[str, torch.Tensor]]
    loss: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
    batch: int
    tokens_per_item: int
    ours_targets: Any
    peft_targets: list[str]
    methods: list[str]                       # "impl:method" keys measured on this workload
    peft_unsupported: set[str] = field(default_factory=set)  # PEFT methods expected to refuse the targets
    lora_rank: int = LORA_RANK
    vera_rank: int = VERA_RANK


ALL_METHODS = ["ours:ft", "ours:lora", "ours:loraplus", "ours:vera", "ours:nola", "ours:randlora",
               "ours:randlora_sparse", "peft:lora", "peft:vera", "peft:randlora"]
PAIRED_METHODS = ["ours:lora", "ours:vera", "ours:randlora", "peft:lora", "peft:vera", "peft:randlora"]


def _ranks(tiny: bool) -> dict[str, int]:
    return dict(lora_rank=4, vera_rank=16) if tiny else dict(lora_rank=LORA_RANK, vera_rank=VERA_RANK)


def _vit(tiny: bool, layers: int | None) -> Workload:
    from timm.models.vision_transformer import VisionTransformer

    shape = dict(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2, num_classes=5) if tiny else \
        dict(img_size=224, patch_size=16, embed_dim=768, depth=2, num_heads=12, num_classes=100)
    shape["depth"] = layers or shape["depth"]
    tokens = (shape["img_size"] // shape["patch_size"]) ** 2 + 1

    def make_batch(batch: int, device: torch.device) -> dict[str, torch.Tensor]:
        size = shape["img_size"]
        return {"images": torch.randn(batch, 3, size, size, device=device),
                "labels": torch.randint(0, shape["num_classes"], (batch,), device=device)}

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch["images"]), batch["labels"])

    return Workload("vit", lambda: VisionTransformer(**shape), make_batch, loss, 2 if tiny else 32, tokens,
                    "vit", ["attn.qkv", "mlp.fc1", "mlp.fc2"], ALL_METHODS, **_ranks(tiny))


def _clip(tiny: bool, layers: int | None, mlp_only: bool) -> Workload:
    import open_clip

    if tiny:
        vision = dict(layers=1, width=32, head_width=16, patch_size=16, image_size=32)
        text = dict(context_length=8, vocab_size=100, width=32, heads=2, layers=1)
        embed, classes = 16, 3
    else:
        vision = dict(layers=1, width=768, head_width=64, patch_size=32, image_size=224)
        text = dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=1)
        embed, classes = 512, 32
    vision["layers"] = text["layers"] = layers or vision["layers"]

    def build() -> nn.Module:
        return open_clip.CLIP(embed, vision_cfg=vision, text_cfg=text)

    def make_batch(batch: int, device: torch.device) -> dict[str, torch.Tensor]:
        size = vision["image_size"]
        return {"images": torch.randn(batch, 3, size, size, device=device),
                "prompts": torch.randint(1, text["vocab_size"], (classes, text["context_length"]), device=device),
                "labels": torch.randint(0, classes, (batch,), device=device)}

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Classification by cosine similarity to the class prompts' embeddings (both towers trained)."""
        image, prompts, scale = model(batch["images"], batch["prompts"])[:3]
        return F.cross_entropy(scale * image @ prompts.t(), batch["labels"])

    tokens = (vision["image_size"] // vision["patch_size"]) ** 2 + 1  # image tokens per item (+ the prompts)
    batch = 2 if tiny else 128
    if mlp_only:
        return Workload("clip_mlp", build, make_batch, loss, batch, tokens, "clip_mlp", ["mlp.c_fc", "mlp.c_proj"],
                        PAIRED_METHODS, **_ranks(tiny))
    return Workload("clip", build, make_batch, loss, batch, tokens, "clip_all", ["attn", "mlp.c_fc", "mlp.c_proj"],
                    ALL_METHODS, {"vera", "randlora"}, **_ranks(tiny))


def _llama(tiny: bool, layers: int | None) -> Workload:
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=100) if tiny else \
        dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=2, num_attention_heads=32,
             num_key_value_heads=8, vocab_size=32000)
    shape["num_hidden_layers"] = layers or shape["num_hidden_layers"]
    seq = 8 if tiny else 256

    def build() -> nn.Module:
        config = LlamaConfig(**shape, max_position_embeddings=max(seq, 512), tie_word_embeddings=False)
        config._attn_implementation = "sdpa"
        return LlamaForCausalLM(config)

    def make_batch(batch: int, device: torch.device) -> dict[str, torch.Tensor]:
        ids = torch.randint(0, shape["vocab_size"], (batch, seq), device=device)
        return {"input_ids": ids, "labels": ids}

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(input_ids=batch["input_ids"], labels=batch["labels"], use_cache=False).loss

    return Workload("llama", build, make_batch, loss, 1, seq, "llm",
                    ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"], ALL_METHODS, **_ranks(tiny))


def make_workload(name: str, tiny: bool, layers: int | None = None) -> Workload:
    """A workload by name; `layers` overrides the number of blocks (per tower for CLIP)."""
    if name == "vit":
        return _vit(tiny, layers)
    if name in ("clip", "clip_mlp"):
        return _clip(tiny, layers, mlp_only=name == "clip_mlp")
    if name == "llama":
        return _llama(tiny, layers)
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")


# --- cases: one method on one workload ---------------------------------------------------------------------
@dataclass
class Case:
    """One method of one implementation, with the adapter config it is injected with."""

    impl: str          # ours | peft
    method: str        # ft, lora, loraplus, vera, nola, randlora, randlora_sparse
    rank: int | None
    config: Any        # our adapter config dict, or a PEFT config object
    lr_ratio: float | None = None
    notes: str = ""


def randlora_rank(workload: Workload) -> tuple[int, int]:
    """RandLoRA rank whose trainable count is closest to LoRA's on this workload: (rank, LoRA's count)."""
    with torch.device("meta"):
        model = workload.build()
    lora = predict_trainable(model, dict(name="lora", rank=workload.lora_rank, targets=workload.ours_targets))
    rank, _ = match_rank(model, dict(name="randlora", targets=workload.ours_targets), lora, ranks=range(1, 257))
    return rank, lora


def make_cases(workload: Workload, selected: list[str] | None) -> list[Case]:
    """The cases of `workload.methods`, in that order; `selected` keeps those named by method or impl:method."""
    import peft

    r_lora, r_vera = workload.lora_rank, workload.vera_rank
    r_rand, _ = randlora_rank(workload)
    targets = workload.ours_targets
    ours = {
        "ft": Case("ours", "ft", None, dict(name="full")),
        "lora": Case("ours", "lora", r_lora, dict(name="lora", rank=r_lora, targets=targets)),
        "loraplus": Case("ours", "loraplus", r_lora, dict(name="loraplus", rank=r_lora, targets=targets),
                         LORAPLUS_RATIO, f"lr_B = {LORAPLUS_RATIO:g} lr_A"),
        "vera": Case("ours", "vera", r_vera, dict(name="vera", rank=r_vera, targets=targets)),
        "nola": Case("ours", "nola", 1, dict(name="nola", rank=1, num_bases=NOLA_BASES, targets=targets),
                     notes=f"{NOLA_BASES} rank-1 bases"),
        "randlora": Case("ours", "randlora", r_rand, dict(name="randlora", rank=r_rand, targets=targets)),
        "randlora_sparse": Case("ours", "randlora_sparse", r_rand,
                                dict(name="randlora", rank=r_rand, basis="sparse", targets=targets)),
    }
    peft_targets = workload.peft_targets
    theirs = {
        "lora": Case("peft", "lora", r_lora, peft.LoraConfig(r=r_lora, lora_alpha=2 * r_lora,
                                                             target_modules=peft_targets)),
        "vera": Case("peft", "vera", r_vera, peft.VeraConfig(r=r_vera, target_modules=peft_targets,
                                                             projection_prng_key=0, d_initial=0.1)),
        "randlora": Case("peft", "randlora", r_rand, peft.RandLoraConfig(
            r=r_rand, randlora_alpha=20 * r_rand, target_modules=peft_targets, projection_prng_key=0)),
    }
    cases = []
    for key in workload.methods:
        if selected is not None and key not in selected and key.split(":")[1] not in selected:
            continue
        impl, method = key.split(":")
        cases.append((ours if impl == "ours" else theirs)[method])
    return cases
