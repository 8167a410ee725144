"""A finished run, rebuilt: its backbone with the trained adapter loaded, and what an export records about it.

`load_run(run_dir)` reads `result.json` (status ok, with its resolved config) and `adapter.safetensors`, seeds
as training did (tiny stand-ins are randomly initialised, so the seed is part of the base model), builds the
backbone and loads the adapter (its random bases regenerated and checked against the stored checksum).

`pretrained_part(backbone)` names the model a user loads outside this project — the transformers model, the
timm model (with our head installed as its classifier), the open_clip model — with its name prefix inside
our backbone and a head that lives outside it (a text classifier's head, CLIP's linear head).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from randlora.adapters.inject import CONFIG_ATTR, adapter_layers
from randlora.adapters.layer import AdaptedLayer
from randlora.backbones.fused_qkv import SplitQKV, join_fused_qkv
from randlora.run.results import ADAPTER_FILE, read_finished_result, write_json_atomic

PROVENANCE_FILE = "provenance.json"


@dataclass
class Run:
    """A rebuilt run: `backbone` carries the trained adapter."""

    run_dir: Path
    result: dict[str, Any]
    backbone: nn.Module
    adapter_path: Path

    @property
    def config(self) -> dict[str, Any]:
        return self.result["config"]


def build_base(config: dict[str, Any]) -> nn.Module:
    """The run's backbone without adapter, built as training built it (same seed, same task classes)."""
    import lightning.pytorch as pl

    from randlora.backbones import build_backbone
    from randlora.data import task_info

    pl.seed_everything(int(config["seed"]), workers=True, verbose=False)
    return build_backbone(config["backbone"], task_info(config["task"]))


def load_run(run_dir: str | Path) -> Run:
    """Rebuild the run in `run_dir` with its adapter loaded (cheap checks first, then the model)."""
    from randlora.adapters import load_adapter, read_adapter_metadata

    run_dir = Path(run_dir)
    result = read_finished_result(run_dir)
    adapter_path = run_dir / ADAPTER_FILE
    if not adapter_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no {ADAPTER_FILE} (a zero-shot run trains none); nothing to export")
    read_adapter_metadata(adapter_path)
    if result["config"]["backbone"].get("family") == "synthetic":
        raise ValueError(f"{run_dir}: the synthetic backbone is a test network with no format of its own to "
                         "export to")
    backbone = build_base(result["config"])
    load_adapter(backbone, adapter_path)
    backbone.eval()
    return Run(run_dir, result, backbone, adapter_path)


def strip_adapters(model: nn.Module) -> None:
    """Take the adapters out again: wrappers give way to their base layer, parametrizations are removed, and a
    GPT-2 `c_attn` split for the adapters (`backbone.split_fused_qkv`) is fused back into one `Conv1D`.

    Call `merge(model)` first to keep ΔW (folded into the base weights); without it the base model returns.
    """
    for module in list(model.modules()):
        for name in list(getattr(module, "parametrizations", {}) or {}):
            if any(isinstance(p, AdaptedLayer) for p in module.parametrizations[name]):
                parametrize.remove_parametrizations(module, name, leave_parametrized=False)
    for name, module in list(model.named_modules()):
        if isinstance(module, AdaptedLayer) and module.base_layer is not None:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, module.base_layer)
    join_fused_qkv(model)
    if getattr(model, CONFIG_ATTR, None) is not None:
        object.__delattr__(model, CONFIG_ATTR)


@dataclass
class Part:
    """The pretrained model inside a backbone, as a user loads it elsewhere."""

    model: nn.Module           # transformers / timm / open_clip model
    prefix: str | None         # its name inside our backbone, e.g. "model." (None: only `renames` map)
    library: str               # transformers | timm | open_clip
    head: nn.Module | None = None   # a head outside `model`, saved as head.safetensors
    head_prefix: str = ""
    renames: dict[str, str] = field(default_factory=dict)   # our prefix -> name in `model` (timm's head)
    tokenizer: Any = None


def pretrained_part(backbone: nn.Module, config: dict[str, Any], export: bool = True) -> Part:
    """The exportable model inside `backbone`.

    With `export` (the backbone is consumed), timm's encoder gets our head as its classifier and CLIP's linear
    mode gets its text tower back; without it only the names are right (for importing into `backbone`).
    """
    kind = getattr(backbone, "kind", "")
    if kind == "causal_lm":
        return Part(backbone.model, "model.", "transformers", tokenizer=backbone.tokenizer)
    if kind == "text":
        return Part(backbone.encoder, "encoder.", "transformers", head=backbone.head, head_prefix="head.",
                    tokenizer=backbone.tokenizer)
    if kind == "image":
        encoder = backbone.encoder
        if export:
            encoder.reset_classifier(backbone.head.out_features)
            encoder.head = backbone.head  # the same Linear: pooled features -> logits, as timm's own head
        return Part(encoder, "encoder.", "timm", renames={"head.": "head."})
    if kind == "clip":
        if backbone.head_mode == "prompts":
            return Part(backbone.clip, "clip.", "open_clip")
        model = full_clip(backbone, config) if export else backbone.visual
        return Part(model, None, "open_clip", head=backbone.head, head_prefix="head.",
                    renames={"visual.": "visual."})  # our backbone keeps the image tower only
    raise ValueError(f"backbone kind {kind!r} has no export format (supported: causal_lm, text, image, clip)")


def full_clip(backbone: nn.Module, config: dict[str, Any]) -> nn.Module:
    """CLIP's linear head mode keeps only the image tower: put it back into a whole open_clip model."""
    from randlora.backbones.clip import create_open_clip
    from randlora.backbones.config import BackboneConfig

    model = create_open_clip(BackboneConfig.from_any(config["backbone"]))[0]
    model.visual = backbone.visual
    return model


def part_name(part: Part, name: str) -> str | None:
    """Our module/parameter name -> its name in `part.model`; None when it lies outside (e.g. the head)."""
    for ours, theirs in part.renames.items():
        if name.startswith(ours):
            return theirs + name[len(ours):]
    if part.prefix is not None and name.startswith(part.prefix):
        return name[len(part.prefix):]
    return None


def our_name(part: Part, name: str) -> str:
    """A name in `part.model` -> ours (the inverse of `part_name`)."""
    for ours, theirs in part.renames.items():
        if (name + ".").startswith(theirs):
            return (ours + name[len(theirs):]).rstrip(".")
    if part.prefix is None:
        raise ValueError(f"module {name} lies outside what this backbone keeps ({', '.join(part.renames)})")
    return part.prefix + name


def save_head(part: Part, folder: Path) -> Path | None:
    """head.safetensors: the head that is not part of the pretrained model (None when there is none)."""
    from safetensors.torch import save_file

    if part.head is None:
        return None
    tensors = {k: v.detach().cpu().contiguous() for k, v in part.head.state_dict().items()}
    note = ("logits = head(mean over non-padding tokens of last_hidden_state)" if part.library == "transformers"
            else "logits = head(normalize(model.encode_image(images)))")
    path = folder / "head.safetensors"
    save_file(tensors, str(path), metadata={"use": note})
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def write_provenance(folder: Path, run: Run, export_format: str, extra: dict[str, Any] | None = None) -> Path:
    """provenance.json: which run this came from (id, config, metrics, basis checksum) and how it was made."""
    from randlora.adapters import read_adapter_metadata

    metadata = read_adapter_metadata(run.adapter_path)
    payload = {
        "format": export_format,
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(run.run_dir),
        "run_id": run.result.get("run_id"),
        "task": run.result.get("task"), "backbone": run.result.get("backbone"),
        "adapter": json.loads(metadata["adapter_config"]),
        "metrics": run.result.get("metrics"),
        "params": run.result.get("params"),
        "basis_checksum": metadata.get("basis_checksum") or None,
        "adapter_file_sha256": file_sha256(run.adapter_path),
        "git_commit": run.result.get("git_commit"),
        "versions": {"torch": torch.__version__, **_versions()},
        "config": run.config,
        **(extra or {}),
    }
    return write_json_atomic(folder / PROVENANCE_FILE, payload)


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for package in ("peft", "transformers", "timm", "open_clip_torch"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def adapted_names(model: nn.Module) -> list[tuple[str, AdaptedLayer]]:
    """(module name, adapter) for every adapted module; a parametrized in_proj gets its owner's name."""
    owners = {id(p): name for name, m in model.named_modules()
              for plist in (getattr(m, "parametrizations", {}) or {}).values() for p in plist}
    names = {id(m): name for name, m in model.named_modules()}
    return [(names[id(layer)] if weight is None else owners[id(layer)], layer)
            for layer, weight in adapter_layers(model)]
