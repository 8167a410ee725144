"""Closed config groups: a key that no config file defines is refused, with the nearest valid name.

Hydra lets ``+optim.learning_rate=0.5`` add a key that nothing reads, and the run would silently train with
the default. ``adapter`` and ``trainer`` are closed by the objects built from them (``AdapterConfig``,
Lightning's ``Trainer``); :func:`check_closed_groups` closes the others that nothing else checks:

- ``optim``: the keys of any ``configs/optim/*.yaml`` (they share one schema);
- ``loader``: the keys of ``loader`` in ``configs/train.yaml``;
- ``task``: the keys of ``configs/task/<task.name>.yaml`` (and the files it extends), when that file exists.

The message is one line: ``optim.learning_rate is not a key of optim: did you mean optim.lr? (allowed: ...)``.
"""
from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from randlora.utils.config import CONFIGS_DIR


@lru_cache(maxsize=None)
def _file_keys(path: Path) -> frozenset[str]:
    """Top-level keys of a group's YAML file, with those of the files it extends (``defaults: [other]``)."""
    node = OmegaConf.load(path)
    keys = {str(k) for k in node.keys() if k != "defaults"}
    for entry in node.get("defaults") or []:
        if isinstance(entry, str) and entry != "_self_":
            keys |= _file_keys(path.with_name(f"{entry}.yaml"))
    return frozenset(keys)


def allowed_keys(group: str, cfg: DictConfig) -> frozenset[str] | None:
    """The keys ``cfg[group]`` may hold, or None where this group has no closed schema (an unknown task)."""
    if group == "optim":
        return frozenset().union(*(_file_keys(p) for p in sorted((CONFIGS_DIR / "optim").glob("*.yaml"))))
    if group == "loader":
        return frozenset(OmegaConf.load(CONFIGS_DIR / "train.yaml").loader.keys())
    if group == "task":
        path = CONFIGS_DIR / "task" / f"{OmegaConf.select(cfg, 'task.name', default='')}.yaml"
        return _file_keys(path) if path.is_file() else None
    raise KeyError(group)


# other libraries' names for keys of ours, tried before spelling similarity
ALIASES = {"learning_rate": "lr", "scheduler": "schedule", "lr_scheduler": "schedule", "warmup": "warmup_steps",
           "gradient_clip_val": "grad_clip", "clip_grad_norm": "grad_clip", "workers": "num_workers"}


def unknown_key_message(group: str, key: str, allowed: frozenset[str]) -> str:
    """One line naming the unknown key, the nearest valid one (if any is close) and all valid ones."""
    alias = ALIASES.get(key)
    nearest = [alias] if alias in allowed else difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.5)
    hint = f"did you mean {group}.{nearest[0]}? " if nearest else ""
    return f"{group}.{key} is not a key of {group}: {hint}(allowed: {', '.join(sorted(allowed))})"


def check_closed_groups(cfg: DictConfig, groups: tuple[str, ...] = ("optim", "loader", "task")) -> str | None:
    """The message for the first key of ``groups`` that no config file defines, or None when all are known."""
    for group in groups:
        node: Any = cfg.get(group)
        if not isinstance(node, DictConfig):
            continue
        allowed = allowed_keys(group, cfg)
        unknown = [] if allowed is None else [str(k) for k in node.keys() if str(k) not in allowed]
        if unknown:
            return unknown_key_message(group, unknown[0], allowed)
    return None
