"""Merged export: W0 + ΔW folded into the base weights, saved in the backbone's own format.

    transformers   save_pretrained folder with the tokenizer: AutoModelForCausalLM / AutoModel.from_pretrained(DIR)
    timm           timm's hub layout (config.json + model.safetensors, our head as the model's classifier):
                   timm.create_model("local-dir:DIR", pretrained=True)
    open_clip      open_clip_model.safetensors (the whole CLIP state dict) + open_clip_config.json:
                   open_clip.create_model(name, pretrained="DIR/open_clip_model.safetensors", **model_kwargs)
                   or open_clip.create_model("local-dir:DIR")

A head outside the pretrained model (a text classifier's, CLIP's linear head) goes to head.safetensors;
CLIP's prompt head is the text tower itself, so its class names and templates are in provenance.json.
Every folder also gets provenance.json (run id, config, metrics, basis checksum). ΔW is folded in float32
and cast to the weights' dtype (the merge refuses NaN/Inf).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from randlora.adapters import merge

from .folders import staged_folder
from .source import Run, pretrained_part, save_head, strip_adapters, write_provenance

OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"


def export_merged(run: Run, out: str | Path) -> Path:
    """Write the merged model of `run` to the new folder `out`; returns it. Consumes `run.backbone`."""
    backbone = run.backbone
    merge(backbone)
    strip_adapters(backbone)
    part = pretrained_part(backbone, run.config)
    with staged_folder(out) as folder:
        extra: dict[str, Any] = {"library": part.library}
        if part.library == "transformers":
            part.model.save_pretrained(folder)
            part.tokenizer.save_pretrained(folder)
        elif part.library == "timm":
            _save_timm(part.model, folder)
        else:
            extra.update(_save_open_clip(part.model, folder, run.config["backbone"], backbone))
        head = save_head(part, folder)
        extra["head_file"] = head.name if head is not None else None
        write_provenance(folder, run, "merged", extra)
    return Path(out)


def _save_timm(model: nn.Module, folder: Path) -> None:
    from timm.models import save_for_hf

    save_for_hf(model, str(folder), safe_serialization=True)


def _save_open_clip(model: nn.Module, folder: Path, backbone_cfg: dict[str, Any], backbone: nn.Module) -> dict:
    """The CLIP state dict as safetensors, and the architecture config open_clip's local-dir loader reads."""
    import open_clip
    from safetensors.torch import save_file

    from randlora.backbones.stand_ins import TINY_CLIP

    name, kwargs = backbone_cfg["name"], dict(backbone_cfg.get("model_kwargs") or {})
    if name == "tiny_clip":
        name, kwargs = TINY_CLIP["open_clip_name"], {**TINY_CLIP["model_kwargs"], **kwargs}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / OPEN_CLIP_WEIGHTS))
    model_cfg = _deep_update(dict(open_clip.get_model_config(name) or {}), kwargs)
    if _quick_gelu(backbone_cfg, name):
        model_cfg["quick_gelu"] = True
    preprocess = {"mean": list(backbone.mean), "std": list(backbone.std)}
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": model_cfg, "preprocess_cfg": preprocess}, indent=2))
    classes = {"class_names": getattr(backbone, "class_names", None), "templates": getattr(backbone, "templates", None)}
    return {"open_clip_name": name, "open_clip_kwargs": kwargs, "weights_file": OPEN_CLIP_WEIGHTS, **classes}


def _quick_gelu(backbone_cfg: dict[str, Any], name: str) -> bool:
    """Whether the model was built with QuickGELU (forced, or implied by its pretrained tag, as in clip.py)."""
    import open_clip

    from randlora.backbones.clip import DEFAULT_TAGS

    if backbone_cfg.get("quick_gelu") is not None:
        return bool(backbone_cfg["quick_gelu"])
    default_tag = DEFAULT_TAGS.get(name) if backbone_cfg["name"] != "tiny_clip" else None
    tag = backbone_cfg.get("pretrained_tag") or default_tag
    return bool(tag and open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))


def _deep_update(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _deep_update(dict(base[key]), value)
        else:
            base[key] = value
    return base

