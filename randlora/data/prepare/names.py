"""Class names written to ``classnames.txt``: the curated prompt names where the project has them.

The curated names of the 22 datasets (atlas' ``templates``/class lists, PAPER.md §3b) live in
``randlora.data.classnames`` (``class_names(dataset)``). When it has no list of the source's length for a
dataset (a source other than the authors'), the source's own names are used with ``_`` shown as a space.
"""
from __future__ import annotations

import importlib
from collections.abc import Sequence


def curated_names(dataset: str, source_names: Sequence[str]) -> list[str]:
    try:
        module = importlib.import_module("randlora.data.classnames")
        names = list(module.class_names(dataset))
    except ValueError:  # not one of the curated datasets
        names = []
    if len(names) == len(source_names):
        return names
    return [name.replace("_", " ").strip() for name in source_names]
