"""open_clip backbones (ViT-B/32, ViT-L/14, ViT-H/14, any open_clip architecture) as zero-shot-style classifiers.

Scores (both head modes): logits_c = s · cos(f(x), t_c), with f the image tower, s = exp(logit_scale) of the
model clamped at 100 (`backbone.logit_scale=exp`) or the raw stored parameter (`raw`, ≈ 4.6: the authors'
training code), and t_c the class embedding: the text tower's normalised embeddings of the prompts
`template.format(c=class_name)`, averaged over templates and renormalised. Training uses `backbone.templates`
(or `backbone.prompt`); evaluation the same, or the task's curated ensemble (`eval_templates=dataset`).

Training loss (`backbone.clip_loss`): `all_classes` is cross-entropy over every class prompt;
`batch_prompts` (the authors' `CLIPVL`) scores each image against the prompts of the batch's labels only,
B × B logits, and sample i's target is the first j with label_j = label_i (repeated classes share the first
occurrence's target, since their prompts are identical). Evaluation always scores all classes.

Head modes (`backbone.head`):
- `prompts` (default): the text tower runs on the tokenised class prompts in every training forward, so
  adapters in both towers train. In eval mode with gradients off, t_c is cached and recomputed whenever any
  parameter changed in place or moved (optimizer step, `load_state_dict`, `merge`, `.to()`). No new
  parameters; the model is held as `clip` (names `clip.visual.…`, `clip.transformer.…`).
- `linear`: t_c is computed once at build time and copied into a linear head, `head.weight = s · t_c`,
  `head.bias = 0`; logits = head(f(x) / ‖f(x)‖). Only the image tower is kept (as `visual`); the head is new
  (`head_prefixes = ["head"]`).

Target presets (module-name suffixes, or exact names where one tower is selected). `attn` names open_clip's
`nn.MultiheadAttention`; the adapter library adapts its bare `in_proj_weight` (q, k and v):
- `clip_all` (default): `attn`, `mlp.c_fc`, `mlp.c_proj` in every block of both towers — what the paper
  ran (its release c7a6515 trains q/k/v; PAPER.md's parameter counts).
- `clip_mlp`: `mlp.c_fc`, `mlp.c_proj` — what the authors' later commit b81ca25 trains (it writes
  `in_proj_weight.data`, which stops q/k/v gradients; PAPER.md §3).
- `clip_visual_all`, `clip_visual_mlp`: the same, image tower only.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .base import Backbone, WeightsUnavailable, cast_floating, exact_names, image_transforms
from .config import BackboneConfig, ClassInfo
from .stand_ins import TINY_CLIP

# Pretrained tag used when `backbone.pretrained_tag` is null: the authors used `openai`; ViT-H-14 has none.
DEFAULT_TAGS = {"ViT-B-32": "openai", "ViT-L-14": "openai", "ViT-H-14": "laion2b_s32b_b79k"}
ALL_SUFFIXES = ["attn", "mlp.c_fc", "mlp.c_proj"]
MLP_SUFFIXES = ["mlp.c_fc", "mlp.c_proj"]
MAX_LOGIT_SCALE = 100.0
TEXT_CHUNK = 256  # prompts per text-tower call when no gradient is needed


class ClipClassifier(Backbone):
    """open_clip model scoring images against class-prompt embeddings. kind = `clip`."""

    kind = "clip"

    def __init__(self, cfg: BackboneConfig, task: ClassInfo) -> None:
        super().__init__()
        if not task.class_names:
            raise ValueError("backbone family 'open_clip' needs task_info.class_names to build class prompts")
        self.class_names = list(task.class_names)
        self.templates = list(cfg.templates)
        if cfg.eval_templates == "dataset" and not task.templates:
            raise ValueError("backbone.eval_templates=dataset needs a task with curated templates (task=fewshot)")
        self.eval_templates = list(task.templates) if cfg.eval_templates == "dataset" else self.templates
        self.head_mode = cfg.head
        self.logit_scale_mode = cfg.logit_scale
        self.uses_batch_prompts = cfg.clip_loss == "batch_prompts"
        model, tokenizer, mean_std, interpolation = create_open_clip(cfg)
        if cfg.gradient_checkpointing:
            model.set_grad_checkpointing(True)
        self.tokenizer = tokenizer
        tokens = _prompt_tokens(tokenizer, self.class_names, self.templates)
        self._cache_key: tuple | None = None
        self._cached_text: torch.Tensor | None = None

        if cfg.head == "prompts":
            self.clip = model
            self.register_buffer("prompt_tokens", tokens, persistent=False)
            eval_tokens = tokens if self.eval_templates == self.templates else _prompt_tokens(
                tokenizer, self.class_names, self.eval_templates)
            self.register_buffer("eval_prompt_tokens", eval_tokens, persistent=False)
            prefix = "clip.visual."
            self.head_prefixes = []
        else:
            with torch.no_grad():
                text = _class_embeddings(model, tokens, len(self.templates))
                scale = _similarity_scale(model.logit_scale, cfg.logit_scale)
            self.visual = model.visual
            self.head = nn.Linear(text.shape[1], len(self.class_names))
            with torch.no_grad():
                self.head.weight.copy_(scale * text)
                self.head.bias.zero_()
            prefix = "visual."
            self.head_prefixes = ["head"]
        cast_floating(self, cfg.torch_dtype)

        self.target_presets = {
            "clip_all": list(ALL_SUFFIXES),
            "clip_mlp": list(MLP_SUFFIXES),
            "clip_visual_all": exact_names(self, prefix, ALL_SUFFIXES),
            "clip_visual_mlp": exact_names(self, prefix, MLP_SUFFIXES),
        }
        self.default_targets = "clip_all"

        visual = self.clip.visual if cfg.head == "prompts" else self.visual
        size = visual.image_size
        self.img_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean, self.std = mean_std
        self.train_transform, self.eval_transform = image_transforms(
            self.img_size, self.mean, self.std, interpolation=interpolation, crop_scale=cfg.crop_scale
        )

    @property
    def similarity_scale(self) -> torch.Tensor:
        """s of `backbone.logit_scale` (prompts mode; in linear mode s is folded into the head)."""
        return _similarity_scale(self.clip.logit_scale, self.logit_scale_mode)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised image features f(x)/‖f(x)‖, shape (batch, embed_dim)."""
        tower = self.clip.encode_image if self.head_mode == "prompts" else self.visual
        return F.normalize(tower(images), dim=-1)

    def class_embeddings(self) -> torch.Tensor:
        """t_c for every class, shape (num_classes, embed_dim), unit norm (prompts mode only)."""
        if self.head_mode != "prompts":
            raise RuntimeError("class_embeddings() needs head='prompts'; in linear mode they live in head.weight")
        if self.training:
            return _class_embeddings(self.clip, self.prompt_tokens, len(self.templates))
        if torch.is_grad_enabled():
            return _class_embeddings(self.clip, self.eval_prompt_tokens, len(self.eval_templates))
        key = tuple((id(p), p._version, p.data_ptr()) for p in self.clip.parameters())
        if key != self._cache_key or self._cached_text is None:
            self._cached_text = _class_embeddings(self.clip, self.eval_prompt_tokens, len(self.eval_templates))
            self._cache_key = key
        return self._cached_text

    def batch_prompt_loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, predicted labels) of `clip_loss=batch_prompts`, see the module docstring.

        The text tower encodes each distinct label of the batch once; a repeated label reuses its embedding,
        which gives the same logits and gradients as encoding the repeated prompt again.
        """
        image = self.embed(images)
        present, inverse = torch.unique(labels, return_inverse=True)
        per_class = self.prompt_tokens.view(len(self.class_names), len(self.templates), -1)
        text = _class_embeddings(self.clip, per_class[present].flatten(0, 1), len(self.templates))[inverse]
        logits = self.similarity_scale * image @ text.to(image.dtype).t()
        same = labels[:, None] == labels[None, :]
        targets = same.int().argmax(dim=1)  # the first j with labels[j] == labels[i]
        loss = F.cross_entropy(logits.float(), targets)
        return loss, labels[logits.argmax(dim=1)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        image = self.embed(images)
        if self.head_mode == "linear":
            return self.head(image)
        text = self.class_embeddings()
        return self.similarity_scale * image @ text.to(image.dtype).t()


def _prompt_tokens(tokenizer, class_names: list[str], templates: list[str]) -> torch.Tensor:
    """Tokens of every `template.format(c=name)`, class-major (class 0's templates first)."""
    return tokenizer([t.format(c=c) for c in class_names for t in templates])


def _similarity_scale(logit_scale: torch.Tensor, mode: str) -> torch.Tensor:
    """exp(logit_scale) clamped at 100 (`exp`), or the stored parameter itself (`raw`)."""
    return logit_scale if mode == "raw" else logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)


def _class_embeddings(model: nn.Module, tokens: torch.Tensor, num_templates: int) -> torch.Tensor:
    """Mean over templates of normalised text embeddings, renormalised; tokens are class-major."""
    if torch.is_grad_enabled():
        text = model.encode_text(tokens)
    else:
        text = torch.cat([model.encode_text(chunk) for chunk in tokens.split(TEXT_CHUNK)])
    text = F.normalize(text, dim=-1).view(-1, num_templates, text.shape[-1]).mean(dim=1)
    return F.normalize(text, dim=-1)



@contextlib.contextmanager
def _quiet_open_clip_root_errors():
    """Drop the records open_clip logs on the root logger (``logging.error``) while it loads weights."""
    def from_open_clip(record: logging.LogRecord) -> bool:
        return "open_clip" not in record.pathname

    root = logging.getLogger()
    root.addFilter(from_open_clip)
    try:
        yield
    finally:
        root.removeFilter(from_open_clip)

def create_open_clip(cfg: BackboneConfig):
    """(model, tokenizer, (mean, std), interpolation) for `cfg`; weights from the tag, `cfg.path` or random."""
    import open_clip

    name, kwargs, pretrained = cfg.name, dict(cfg.model_kwargs), cfg.pretrained
    if name == "tiny_clip":
        name, kwargs, pretrained = TINY_CLIP["open_clip_name"], {**TINY_CLIP["model_kwargs"], **kwargs}, False
    path = None if cfg.path is None else Path(cfg.path).expanduser()
    if path is not None and not path.exists():
        raise FileNotFoundError(f"backbone.path={str(path)!r} does not exist")

    if path is not None and path.is_dir():  # a hub-layout folder: open_clip_config.json + weights
        if not (path / "open_clip_config.json").is_file():
            raise FileNotFoundError(f"backbone.path={str(path)!r} is a folder without open_clip_config.json")
        model_name = f"local-dir:{path}"
        model = open_clip.create_model(model_name, **kwargs)
        tokenizer = open_clip.get_tokenizer(model_name)
        pp = open_clip.get_model_preprocess_cfg(model)
        return model, tokenizer, (tuple(pp["mean"]), tuple(pp["std"])), pp.get("interpolation", "bicubic")

    if name not in open_clip.list_models():
        raise ValueError(
            f"backbone.name={cfg.name!r} is not an open_clip architecture; use e.g. 'ViT-B-32', 'ViT-L-14', "
            "'ViT-H-14', 'tiny_clip', or any name in open_clip.list_models()"
        )
    tag = cfg.pretrained_tag or (DEFAULT_TAGS.get(name) if cfg.name != "tiny_clip" else None)
    tag_cfg: dict = {}
    if tag is not None:
        tag_cfg = open_clip.get_pretrained_cfg(name, tag)
        if not tag_cfg:
            raise ValueError(
                f"backbone.pretrained_tag={tag!r} is not a known tag for {name!r}; allowed: "
                f"{', '.join(open_clip.list_pretrained_tags_by_model(name))}"
            )
    elif pretrained and path is None:
        raise ValueError(
            f"backbone.pretrained=true needs backbone.pretrained_tag for {name!r}; allowed: "
            f"{', '.join(open_clip.list_pretrained_tags_by_model(name))}"
        )
    quick_gelu = cfg.quick_gelu if cfg.quick_gelu is not None else bool(tag_cfg.get("quick_gelu", False))
    source = str(path) if path is not None else (tag if pretrained else None)
    try:
        with _quiet_open_clip_root_errors():  # its download failure is logged to the root logger; ours says it once
            model = open_clip.create_model(
                name,
                pretrained=source,
                force_quick_gelu=quick_gelu,
                force_image_size=cfg.img_size,
                device=torch.get_default_device(),  # `with torch.device("meta"):` builds without memory
                **kwargs,
            )
    except RuntimeError as err:
        if path is None and source is not None:
            raise WeightsUnavailable(f"open_clip {name!r} (tag {tag!r})", err) from err
        raise
    tokenizer = open_clip.get_tokenizer(name, context_length=model.context_length)
    pp = {**open_clip.get_model_preprocess_cfg(model), **{k: tag_cfg[k] for k in ("mean", "std") if k in tag_cfg}}
    return model, tokenizer, (tuple(pp["mean"]), tuple(pp["std"])), tag_cfg.get("interpolation", "bicubic")
