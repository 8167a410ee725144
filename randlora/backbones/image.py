"""timm image backbones (DINOv2 ViT-B/14, ViT-L/14, any timm model) with a fresh linear head.

logits = W · f(x) + b, where f(x) is the timm model's pooled feature (the class token for DINOv2) and the
head (W, b) is new: W ~ N(0, 0.01²), b = 0 (the authors' DINOv2 head init). Transforms and normalisation come
from the model's own timm data config (mean, std, interpolation, crop_pct) at the configured `img_size`.

Target presets (module-name suffixes of timm's `VisionTransformer`):
- `vit`: `attn.qkv`, `mlp.fc1`, `mlp.fc2` (the paper's DINOv2 targets; default);
- `vit_attn`: `attn.qkv`, `attn.proj`;  `vit_mlp`: `mlp.fc1`, `mlp.fc2`.
(Names shared with `randlora.adapters.PRESETS` have the same lists there.)
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .base import Backbone, WeightsUnavailable, cast_floating, image_transforms
from .config import BackboneConfig, ClassInfo
from .stand_ins import TINY_VIT

VIT_PRESETS = {
    "vit": ["attn.qkv", "mlp.fc1", "mlp.fc2"],
    "vit_attn": ["attn.qkv", "attn.proj"],
    "vit_mlp": ["mlp.fc1", "mlp.fc2"],
}
CHECKPOINT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pth", "checkpoint.pth")


class TimmClassifier(Backbone):
    """`encoder` (timm model without its classifier) + `head` (nn.Linear). kind = `image`."""

    kind = "image"

    def __init__(self, cfg: BackboneConfig, task: ClassInfo) -> None:
        super().__init__()
        num_classes = task.require_num_classes("timm")
        self.encoder = create_timm_encoder(cfg)
        if cfg.gradient_checkpointing:
            self.encoder.set_grad_checkpointing(True)
        self.head = nn.Linear(self.encoder.num_features, num_classes)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        cast_floating(self, cfg.torch_dtype)

        self.target_presets = {k: list(v) for k, v in VIT_PRESETS.items()}
        self.default_targets = "vit"
        self.head_prefixes = ["head"]

        import timm.data

        data_cfg = timm.data.resolve_model_data_config(self.encoder)
        self.img_size = cfg.img_size or _native_img_size(self.encoder, data_cfg)
        self.mean, self.std = tuple(data_cfg["mean"]), tuple(data_cfg["std"])
        self.train_transform, self.eval_transform = image_transforms(
            self.img_size,
            self.mean,
            self.std,
            interpolation=data_cfg.get("interpolation", "bicubic"),
            crop_pct=data_cfg.get("crop_pct", 1.0),
            crop_scale=cfg.crop_scale,
        )

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features, shape (batch, num_features)."""
        return self.encoder(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(images))


def create_timm_encoder(cfg: BackboneConfig) -> nn.Module:
    """The timm model with `num_classes=0`, weights from the hub, from `cfg.path`, or random."""
    import timm

    name, kwargs, pretrained = cfg.name, dict(cfg.model_kwargs), cfg.pretrained
    if name == "tiny_vit":
        name, kwargs, pretrained = TINY_VIT["timm_name"], {**TINY_VIT["model_kwargs"], **kwargs}, False
    if not timm.is_model(name):
        raise ValueError(
            f"backbone.name={cfg.name!r} is not a timm model name; use e.g. 'vit_base_patch14_dinov2.lvd142m', "
            "'vit_large_patch14_dinov2.lvd142m', 'tiny_vit', or any name in timm.list_models()"
        )
    if cfg.img_size is not None:
        kwargs["img_size"] = cfg.img_size
    if cfg.path is not None:
        kwargs["pretrained_cfg_overlay"] = {"file": str(checkpoint_file(cfg.path))}
        pretrained = True
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
    except Exception as err:  # hub errors differ between huggingface_hub versions
        if pretrained and cfg.path is None:
            raise WeightsUnavailable(f"timm {name!r}", err) from err
        raise


def checkpoint_file(path: str | Path) -> Path:
    """`path` if it is a file, else the first known checkpoint file inside the folder `path`."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for filename in CHECKPOINT_FILES:
            if (path / filename).is_file():
                return path / filename
        raise FileNotFoundError(f"backbone.path={str(path)!r} is a folder without any of {list(CHECKPOINT_FILES)}")
    raise FileNotFoundError(f"backbone.path={str(path)!r} does not exist")


def _native_img_size(model: nn.Module, data_cfg: dict) -> int:
    """The resolution the model was built for (a ViT's patch_embed knows it; else the data config)."""
    patch_embed = getattr(model, "patch_embed", None)
    size = getattr(patch_embed, "img_size", None)
    if size is None:
        size = data_cfg["input_size"][-2:]
    return int(size[0] if isinstance(size, (tuple, list)) else size)
