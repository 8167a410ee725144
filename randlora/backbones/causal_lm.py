"""Causal language models (LLaMA3-8B, Qwen2-0.5B, Phi-3-mini, any transformers causal LM) for instruction tuning.

`CausalLM` wraps `AutoModelForCausalLM` as `model`: `forward(**batch)` returns the transformers output
(logits, and the loss when `labels` are given); `generate(**kwargs)` is the model's, with the pad token
filled in. The tokenizer gets a pad token when it has none (pad = eos, as for LLaMA-3) and pads on
`backbone.padding_side` (left by default, which batched generation needs). No new head.

Target presets (suffixes of transformers module names); a preset is offered when each of its suffixes names
at least one module of the model:
- `llm` (default): `q_proj`, `k_proj`, `v_proj`, `up_proj`, `down_proj` (the paper's targets);
- `llm_qv`: `q_proj`, `v_proj`;  `llm_all`: also `o_proj`, `gate_proj`;
- `gpt2` (default for GPT-2): `c_attn`, the fused query/key/value `Conv1D`, adapted whole;
- `gpt2_qv_mlp` (default for GPT-2 with `backbone.split_fused_qkv=true`, which splits `c_attn` into `c_attn.q`,
  `c_attn.k`, `c_attn.v`): `c_attn.q`, `c_attn.v`, `mlp.c_fc`, `mlp.c_proj`, the RandLoRA authors' E2E targets
  (LoRA's own E2E code: the query and value parts only);
- `phi3` (default for Phi-3, whose attention and MLP are fused): `qkv_proj`, `gate_up_proj`, `down_proj`.
  The authors passed the `llm` list for Phi-3 too; on transformers' Phi-3 only `down_proj` matches it.

`meta_model(spec)` builds a causal LM on the `meta` device (no memory, no weights) from a config in
`meta_configs.py`, a hub id aliased there, a config dict with `model_type`, or a `PretrainedConfig`, so that
parameter counts of 8B models can be computed anywhere.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from . import hf
from .base import Backbone, cast_floating, name_matches
from .config import BackboneConfig, ClassInfo
from .fused_qkv import split_fused_qkv
from .meta_configs import META_ALIASES, META_CONFIGS
from .stand_ins import tiny_gpt2, tiny_llama

LLM_PRESETS = {
    "llm": ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"],
    "llm_qv": ["q_proj", "v_proj"],
    "llm_all": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "gate_up_proj", "down_proj"],
    "gpt2": ["c_attn"],
    "gpt2_qv_mlp": ["c_attn.q", "c_attn.v", "mlp.c_fc", "mlp.c_proj"],
}
STAND_INS = {"tiny_llama": tiny_llama, "tiny_gpt2": tiny_gpt2}
DEFAULT_MAX_LENGTH = 256  # the paper's cutoff length


class CausalLM(Backbone):
    """A transformers causal LM (`model`) with its tokenizer. kind = `causal_lm`."""

    kind = "causal_lm"

    def __init__(self, cfg: BackboneConfig, task: ClassInfo | None = None) -> None:
        super().__init__()
        stand_in = STAND_INS.get(cfg.name, tiny_llama)
        source = hf.resolve_source(cfg, stand_in=cfg.name if cfg.name in STAND_INS else "tiny_llama")
        if source is None:
            self.model, self.tokenizer = stand_in(cfg.model_kwargs)
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.model = hf.load(
                AutoModelForCausalLM.from_pretrained, source, **hf.dtype_kwarg(cfg.torch_dtype), **cfg.model_kwargs
            )
            self.tokenizer = hf.load(AutoTokenizer.from_pretrained, source)
        cast_floating(self, cfg.torch_dtype)
        if cfg.split_fused_qkv:
            split_fused_qkv(self.model)
        configure_tokenizer(self.tokenizer, self.model, cfg.padding_side)
        if cfg.gradient_checkpointing:
            hf.enable_checkpointing(self.model)
            self.model.config.use_cache = False
        self.max_length = cfg.max_length or DEFAULT_MAX_LENGTH
        self.target_presets = llm_presets(self.model)
        self.default_targets = next((p for p in ("phi3", "gpt2_qv_mlp", "gpt2") if p in self.target_presets), "llm")
        self.head_prefixes = []

    def forward(self, **batch: Any):
        return self.model(**batch)

    @torch.no_grad()
    def generate(self, **kwargs: Any) -> torch.Tensor:
        """`model.generate` with `pad_token_id` defaulting to the tokenizer's."""
        kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        return self.model.generate(**kwargs)


def configure_tokenizer(tokenizer, model, padding_side: str) -> None:
    """Give the tokenizer a pad token (eos when missing) and the padding side; tell the model the pad id."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token; add one before training")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def llm_presets(model: torch.nn.Module) -> dict[str, list[str]]:
    """The presets of `LLM_PRESETS` whose every suffix names at least one module of `model`."""
    names = [name for name, _ in model.named_modules()]
    return {
        preset: list(suffixes)
        for preset, suffixes in LLM_PRESETS.items()
        if all(any(name_matches(name, [s]) for name in names) for s in suffixes)
    }


def meta_model(spec: str | Mapping[str, Any] | Any):
    """A causal LM with all parameters on the `meta` device, built from `spec` (see the module docstring)."""
    from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

    if isinstance(spec, PretrainedConfig):
        config = spec
    else:
        if isinstance(spec, str):
            key = META_ALIASES.get(spec, spec)
            if key not in META_CONFIGS:
                raise ValueError(
                    f"meta_model({spec!r}): unknown model; allowed: {', '.join([*META_CONFIGS, *META_ALIASES])}, "
                    "or a config dict with 'model_type'"
                )
            spec = META_CONFIGS[key]
        values = dict(spec)
        if "model_type" not in values:
            raise ValueError(f"meta_model: a config dict needs 'model_type'; got keys {sorted(values)}")
        config = AutoConfig.for_model(values.pop("model_type"), **values)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)
