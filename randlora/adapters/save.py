"""Adapter checkpoints: safetensors with the trainable tensors and the adapter config, nothing else.

Frozen random bases are not stored: `load_adapter` regenerates them from `basis_seed` (on CPU, float32) by
injecting the stored config, and refuses the file if their checksum differs from the stored one. A fingerprint
of the base model's parameter names and shapes guards against loading onto another backbone. Files are
written to a temporary name and renamed, so a kill never leaves a truncated file under the real name.
Bases that no seed regenerates (an imported PEFT adapter's, `SharedBases.stored`) are stored in the file as
`bases.<name>` and put back by `load_adapter` before the checksum check.
The scale s each adapted layer resolved (`alpha`/`scaling` defaults included) is stored too, and a file whose
config now resolves to another scale is refused: a default that changed since a file was written (RandLoRA
`scaling=peft` with `alpha=null` meant α = 20·rank before e3d083b, 640 since) must not load as another model.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from randlora.utils.files import publish

from .bases import SharedBases
from .config import AdapterConfig
from .inject import CONFIG_ATTR, basis_checksum, count_parameters, inject
from .layer import AdaptedLayer

FORMAT = "randlora-adapter/1"
STORED_BASES = "bases."  # key prefix of stored bases
ADAPTER_PARAM = re.compile(r"(^|\.)(lora_A|lora_B|vera_lambda_b|vera_lambda_d|nola_alpha|nola_beta|"
                           r"randlora_lambda|randlora_gamma)$")


def _base_name(name: str) -> str:
    """Parameter name as it was before injection."""
    name = name.replace(".base_layer.", ".")
    return re.sub(r"\.parametrizations\.(\w+)\.original$", r".\1", name)


def base_signature(model: nn.Module) -> str:
    """SHA-256 of the base model's (parameter name, shape) list: adapters excluded, injection undone."""
    rows = sorted((_base_name(n), list(p.shape)) for n, p in model.named_parameters()
                  if not ADAPTER_PARAM.search(n))
    return "sha256:" + hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def layer_scales(model: nn.Module) -> dict[str, float]:
    """The scale s of every adapted layer (what `alpha` and `scaling` resolved to), by module name."""
    return {name: float(m.scale) for name, m in model.named_modules()
            if isinstance(m, AdaptedLayer) and isinstance(getattr(m, "scale", None), (int, float))}


def _check_scales(path: Path, metadata: dict[str, str], saved: AdapterConfig, model: nn.Module) -> None:
    """Refuse a file whose stored layer scales differ from those its config resolves to with this code."""
    if "layer_scales" not in metadata:  # written before scales were stored
        if saved.name == "randlora" and saved.scaling == "peft" and saved.alpha is None:
            raise ValueError(f"adapter file {path} (randlora, scaling=peft, alpha=null) predates stored scales: "
                             "alpha=null meant 20*rank before commit e3d083b and 640 since; retrain it, or load it "
                             "with the code that wrote it")
        return
    stored, now = json.loads(metadata["layer_scales"]), layer_scales(model)
    for name, scale in stored.items():
        if name in now and abs(now[name] - scale) > 1e-6 * max(1.0, abs(scale)):
            raise ValueError(f"adapter file {path} was trained with scale {scale:.6g} on {name}, but its config "
                             f"{saved.name} (alpha={saved.alpha}, scaling={saved.scaling}) gives {now[name]:.6g} "
                             "with this code (a default changed since); retrain it, or load it with the code that "
                             "wrote it")


def save_adapter(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the trainable tensors + config to `path` (safetensors), atomically. Returns the path."""
    config: AdapterConfig | None = getattr(model, CONFIG_ATTR, None)
    if config is None:
        raise ValueError("save_adapter: the model has no adapter; call inject(model, config) first")
    tensors = {n: p.detach().to("cpu").clone().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    bases = shared_bases(model)
    if bases is not None and bases.stored:
        tensors.update({STORED_BASES + n: b.detach().to("cpu").clone().contiguous()
                        for n, b in bases.named_buffers(recurse=False)})
    metadata = {
        "format": FORMAT,
        "adapter_config": json.dumps(config.to_dict()),
        "basis_checksum": basis_checksum(model) or "",
        "base_signature": base_signature(model),
        "trainable_parameters": str(count_parameters(model)[0]),
        "layer_scales": json.dumps(layer_scales(model), separators=(",", ":")),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    publish(tmp, path)  # safetensors creates 0600; the file gets the umask's mode like any other
    return path


def shared_bases(model: nn.Module) -> SharedBases | None:
    return next((m for m in model.modules() if isinstance(m, SharedBases)), None)


def read_adapter_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of an adapter file; a clear error if it is missing, truncated or not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"adapter file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"adapter file {path} is not a complete safetensors file ({err}); "
                         "it may be truncated by an interrupted write") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"adapter file {path} has format {metadata.get('format')!r}, expected {FORMAT!r}")
    return metadata


def load_adapter(model: nn.Module, path: str | os.PathLike) -> AdapterConfig:
    """Load an adapter saved by `save_adapter` into `model`, injecting it first if the model has none.

    Refuses: a different adapter config than the one already injected, a different base model, random bases
    whose checksum differs from the stored one, and tensors that are missing, unexpected or mis-shaped.
    """
    path = Path(path)
    metadata = read_adapter_metadata(path)
    saved = AdapterConfig(**json.loads(metadata["adapter_config"]))
    current: AdapterConfig | None = getattr(model, CONFIG_ATTR, None)
    if current is None:
        inject(model, saved)
    elif current.to_dict() != saved.to_dict():
        diff = {k: (v, current.to_dict()[k]) for k, v in saved.to_dict().items() if current.to_dict()[k] != v}
        raise ValueError(f"adapter file {path} holds a different adapter than the model's: "
                         f"(file, model) = {diff}")
    _check_scales(path, metadata, saved, model)
    signature = base_signature(model)
    if metadata["base_signature"] != signature:
        raise ValueError(f"adapter file {path} was trained on another base model (parameter names/shapes differ:"
                         f" file {metadata['base_signature'][:19]}…, model {signature[:19]}…)")
    bases = shared_bases(model)
    with safe_open(str(path), framework="pt") as f:
        stored = {k[len(STORED_BASES):]: f.get_tensor(k) for k in f.keys() if k.startswith(STORED_BASES)}
    if stored:
        if bases is None:
            raise ValueError(f"adapter file {path} stores random bases, but a {saved.name} adapter has none")
        bases.replace(stored)
    checksum = basis_checksum(model) or ""
    if metadata["basis_checksum"] and checksum and metadata["basis_checksum"] != checksum:
        raise ValueError(f"adapter file {path}: random bases regenerated from basis_seed={saved.basis_seed} have "
                         f"checksum {checksum}, but the file was trained with {metadata['basis_checksum']}. "
                         "The bases differ (another torch RNG, basis kind, rank or targets); refusing to load.")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    with safe_open(str(path), framework="pt") as f:
        keys = {k for k in f.keys() if not k.startswith(STORED_BASES)}
        missing, unexpected = sorted(set(params) - keys), sorted(keys - set(params))
        if missing or unexpected:
            raise ValueError(f"adapter file {path} does not fit the model: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
        with torch.no_grad():
            for name, p in params.items():
                tensor = f.get_tensor(name)
                if tensor.shape != p.shape:
                    raise ValueError(f"adapter file {path}: {name} has shape {tuple(tensor.shape)}, "
                                     f"the model expects {tuple(p.shape)}")
                p.copy_(tensor.to(p.dtype))
    return saved
