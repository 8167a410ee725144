"""Curated class names and CLIP prompt templates of the paper's 22 image datasets (PAPER.md §3b, §4).

The authors took their data, class names and templates from fredzzhang/atlas (``src/datasets/*.py``,
``templates.py``); ``classnames.json`` carries those lists as data, each with a note of where it comes from.
Class ``i`` of a list is label ``i`` of the source dataset (torchvision's target, atlas's ImageFolder index).

A prepared dataset stores class ``i`` in the folder ``class_folder(dataset, i)`` ("007.golden retriever"-like:
the zero-padded label, a dot, the name with path separators replaced), so that sorting the folders gives the
label order and the loader can tell a curated layout from any other ImageFolder tree.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

DATA_FILE = Path(__file__).with_name("classnames.json")


@lru_cache(maxsize=1)
def _table() -> dict[str, dict]:
    with open(DATA_FILE, encoding="utf-8") as handle:
        return json.load(handle)["datasets"]


def curated_datasets() -> list[str]:
    """Names of the datasets with a curated class list (the paper's 22)."""
    return list(_table())


def _entry(dataset: str) -> dict:
    table = _table()
    key = dataset.lower()
    if key not in table:
        raise ValueError(f"no curated class names for dataset '{dataset}'; curated: {', '.join(table)}")
    return table[key]


def class_names(dataset: str) -> list[str]:
    """The curated class names of ``dataset`` in label order (index i = label i)."""
    return list(_entry(dataset)["classes"])


def templates(dataset: str) -> list[str]:
    """The dataset's CLIP prompt templates (format strings with ``{c}``), first one = atlas's first."""
    return list(_entry(dataset)["templates"])


def source(dataset: str) -> str:
    """Where the curated list of ``dataset`` comes from (file and transformation)."""
    return str(_entry(dataset)["source"])


def class_folder(dataset: str, label: int) -> str:
    """Folder name of class ``label`` in a prepared ``dataset``: ``f"{label:03d}.{name}"``, "/" -> "_"."""
    names = class_names(dataset)
    if not 0 <= label < len(names):
        raise ValueError(f"label {label} outside [0, {len(names)}) for dataset '{dataset}'")
    return f"{label:03d}." + names[label].replace("/", "_").replace("\\", "_")


def class_folders(dataset: str) -> list[str]:
    """All folder names of a prepared ``dataset`` in label order (sorted order equals label order)."""
    return [class_folder(dataset, label) for label in range(len(class_names(dataset)))]
