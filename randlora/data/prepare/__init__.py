"""Preparing every benchmark's data by one command (``scripts/prepare_data.py``), and checking it.

- ``fewshot``: the paper's 22 datasets in the authors' (fredzzhang/atlas) splits -> ``fewshot.py``,
  ``fewshot_torchvision.py`` (torchvision downloads), ``fewshot_manual.py`` (hand-fetched sources),
  ``layout.py`` (the on-disk layout, written atomically, with classnames.txt and manifest.json).
- ``vtab``: NOAH's VTAB-1k archive unpacked -> ``vtab.py``.
- ``commonsense``: LLM-Adapters files at a pinned commit, verified -> ``commonsense.py``, ``download.py``.
- ``--check``: ``check.py`` against the sizes in ``expected.py``.
"""
from __future__ import annotations

BENCHMARKS = ("fewshot", "vtab", "commonsense")
