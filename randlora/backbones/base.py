"""The `Backbone` interface shared by every family, and the image transforms of the image kinds.

A Backbone is an `nn.Module` with:
- `kind`: `image`, `clip`, `text`, `causal_lm` or `regression` (the synthetic experiment);
- `target_presets`: preset name -> list of module-name suffixes (or exact qualified names) for
  `randlora.adapters.inject`; `default_targets`: the preset used when the adapter config names none;
- `head_prefixes`: parameter-name prefixes of the freshly initialised head (to pass as `trainable_extra`);
- image kinds: `train_transform`, `eval_transform`; text kinds: `tokenizer`, `max_length`, `collate`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision import transforms as T

KINDS = ("image", "clip", "text", "causal_lm", "regression")
_GATED_HINTS = ("gated", "401", "403", "restricted", "access to model")


class WeightsUnavailable(FileNotFoundError):
    """Pretrained weights that are neither cached nor downloadable: one line with the way out (``backbone.path=``).

    The underlying hub error stays attached as ``__cause__`` (shown with ``HYDRA_FULL_ERROR=1``).
    """

    def __init__(self, model: str, error: BaseException) -> None:
        text = str(error).lower()
        if any(hint in text for hint in _GATED_HINTS) or "meta-llama/" in model:
            reason = ("the hub is unreachable or refused access, and the model is gated: accept its licence on "
                      "the hub and set HF_TOKEN")
        else:
            reason = "they are not in the local cache and the hub is unreachable (offline, or no network)"
        super().__init__(f"pretrained weights of {model} could not be loaded: {reason}; "
                         "or set backbone.path=<a local copy> (see docs/USAGE.md, 'Weights without hub access')")


class Backbone(nn.Module):
    """Base class: holds the interface attributes; subclasses build the model and define `forward`."""

    kind: str = ""
    target_presets: dict[str, list[str]]
    default_targets: str
    head_prefixes: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.target_presets = {}
        self.default_targets = ""
        self.head_prefixes = []

    def targets(self, preset: str | None = None) -> list[str]:
        """The target list of `preset` (default: `default_targets`), with a clear error for unknown names."""
        preset = preset or self.default_targets
        if preset not in self.target_presets:
            raise ValueError(
                f"target preset {preset!r} is not defined for this {self.kind} backbone; "
                f"allowed: {', '.join(self.target_presets)}"
            )
        return list(self.target_presets[preset])


def name_matches(name: str, suffixes: Sequence[str]) -> bool:
    """Suffix match on dotted-name boundaries: `blocks.0.attn.qkv` matches `attn.qkv` and `qkv`, not `kv`."""
    return any(name == s or name.endswith("." + s) for s in suffixes)


def exact_names(model: nn.Module, prefix: str, suffixes: Sequence[str]) -> list[str]:
    """Qualified names under `prefix` that end with one of `suffixes` (to restrict a preset to one tower)."""
    return [
        name for name, _ in model.named_modules() if name.startswith(prefix) and name_matches(name, suffixes)
    ]


class ToRGB:
    """PIL image -> RGB (grayscale datasets such as MNIST feed 3-channel backbones). Picklable for workers."""

    def __call__(self, image):
        return image.convert("RGB") if hasattr(image, "convert") and image.mode != "RGB" else image

    def __repr__(self) -> str:
        return "ToRGB()"


_INTERPOLATION = {
    "bicubic": T.InterpolationMode.BICUBIC,
    "bilinear": T.InterpolationMode.BILINEAR,
    "nearest": T.InterpolationMode.NEAREST,
}


def image_transforms(
    img_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    interpolation: str = "bicubic",
    crop_pct: float = 1.0,
    crop_scale: tuple[float, float] = (0.5, 1.0),
) -> tuple[T.Compose, T.Compose]:
    """(train, eval) transforms from PIL images to normalised tensors of shape (3, img_size, img_size).

    train: RandomResizedCrop(img_size, scale=crop_scale) + horizontal flip; eval: resize the short side to
    img_size / crop_pct, then center crop img_size. Both normalise with the backbone's own mean/std.
    """
    mode = _INTERPOLATION.get(interpolation, T.InterpolationMode.BICUBIC)
    normalise = [T.ToTensor(), T.Normalize(mean=tuple(mean), std=tuple(std))]
    train = T.Compose(
        [ToRGB(), T.RandomResizedCrop(img_size, scale=crop_scale, interpolation=mode), T.RandomHorizontalFlip()]
        + normalise
    )
    resize = int(round(img_size / crop_pct))
    eval_ = T.Compose([ToRGB(), T.Resize(resize, interpolation=mode), T.CenterCrop(img_size)] + normalise)
    return train, eval_


def resize_transform(img_size: int, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """The VTAB-1k protocol's transform (NOAH, PETL-ViT): Resize((img_size, img_size)) bicubic, normalise.

    No crop and no flip, for training and testing alike: a flip or a crop changes the label of position,
    orientation and count tasks (dSprites, SmallNORB, CLEVR, KITTI) and a center crop cuts KITTI's sides.
    """
    return T.Compose([ToRGB(), T.Resize((img_size, img_size), interpolation=T.InterpolationMode.BICUBIC),
                      T.ToTensor(), T.Normalize(mean=tuple(mean), std=tuple(std))])


def cast_floating(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast floating-point parameters and buffers to `dtype` (integer buffers untouched)."""
    return module if dtype == torch.float32 else module.to(dtype)
