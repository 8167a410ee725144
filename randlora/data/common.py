"""Small pieces shared by the task loaders: config access, list-backed datasets, seeded sampling."""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch.utils.data import Dataset

_REQUIRED = object()


def cfg_get(cfg: Any, key: str, default: Any = _REQUIRED) -> Any:
    """Read ``key`` from a task config given as a dict, an OmegaConf node or any attribute object.

    A missing key returns ``default``; with no default, a missing key raises a ``KeyError`` that names
    the key (``task.<key>``). OmegaConf's ``???`` (missing mandatory value) counts as missing.
    """
    value: Any = _REQUIRED
    if isinstance(cfg, Mapping):
        value = cfg.get(key, _REQUIRED)
    elif hasattr(cfg, "get") and callable(cfg.get):  # OmegaConf DictConfig
        try:
            value = cfg.get(key, _REQUIRED)
        except Exception:  # omegaconf.MissingMandatoryValue and friends
            value = _REQUIRED
    else:
        value = getattr(cfg, key, _REQUIRED)
    if value is _REQUIRED:
        if default is _REQUIRED:
            raise KeyError(f"task config has no value for 'task.{key}'")
        return default
    return value


def as_list(value: Any) -> list[Any] | None:
    """``None`` stays ``None``; a single string becomes a one-element list; sequences become lists."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return list(value)


class ListDataset(Dataset):
    """A map-style dataset over an in-memory list, with an optional per-item transform."""

    def __init__(self, items: Sequence[Any], transform: Callable[[Any], Any] | None = None):
        self.items = list(items)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        item = self.items[index]
        return self.transform(item) if self.transform is not None else item


def seeded_shuffle(n: int, seed: int) -> list[int]:
    """A permutation of ``range(n)`` that depends only on ``seed`` (Python's Mersenne Twister)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def oversample(indices: Sequence[int], min_length: int) -> list[int]:
    """Repeat ``indices`` whole until there are at least ``min_length`` of them (no change if already long enough).

    Used so that one few-shot epoch has at least ``min_iterations * batch_size`` samples: with ``m`` samples
    the list is repeated ``floor(min_length / m) + 1`` times, as the authors' ``finetune.py`` does
    (``int(10 / r) + 1`` with r = m / batch), i.e. one more than needed when ``min_length`` is a multiple of m.
    """
    indices = list(indices)
    if not indices or len(indices) >= min_length:
        return indices
    repeats = min_length // len(indices) + 1
    return indices * repeats
