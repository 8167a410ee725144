"""Cells: one training (or zero-shot) run of a paper table or figure, and whether it already has an ok result.

A :class:`Cell` is the list of ``train.py`` overrides that produce it, the runs-table columns its ``result.json``
must show (``keys``: task, backbone, adapter, rank, basis, train set, dataset, regime, seed, as
:func:`randlora.reporting.collect` derives them) and an estimate of its compute. The adapter-dependent keys
(adapter name, rank, basis) are read from the composed config of the cell's variant
(:func:`variant_keys`), so a rank looked up from the backbone in ``configs/experiment/fig3_clip/vera.yaml`` is
never restated here. The paper's axes (datasets, regimes, ranks, seeds) and the enumeration of each table or
figure live in :mod:`randlora.experiments.paper`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from randlora.reporting.runs import as_key

NO_OUTPUT_DIR = "paths.output_dir=/tmp/unused"  # ${hydra:runtime.output_dir} exists only inside a Hydra app
SWEPT_KEYS = ("task.dataset", "seed")  # the axes a launch sweeps with comma lists (see launch.sweeps)
REGIME_OVERRIDES = {"50%": ("task.shots=null", "task.fraction=0.5"),
                    "100%": ("task.shots=null", "task.fraction=1.0")}


@dataclass(frozen=True)
class Cell:
    """One run of a table or figure: its ``train.py`` overrides, the result keys it must show, its cost."""

    overrides: tuple[str, ...]
    keys: tuple[tuple[str, str | None], ...]
    hours: float | None = field(default=None, compare=False)

    @property
    def key_dict(self) -> dict[str, str | None]:
        return dict(self.keys)

    def command(self) -> str:
        return "python train.py " + " ".join(self.overrides)


def regime_overrides(regime: str) -> tuple[str, ...]:
    """``"16"`` -> ``task.shots=16 task.fraction=null``; ``"50%"`` / ``"100%"`` -> a data fraction."""
    if regime in REGIME_OVERRIDES:
        return REGIME_OVERRIDES[regime]
    if not regime.isdigit() or int(regime) < 1:
        raise ValueError(f"regime {regime!r} is not known: allowed are shots per class (1, 2, 4, 16) or 50%, 100%")
    return (f"task.shots={int(regime)}", "task.fraction=null")


@functools.lru_cache(maxsize=None)
def variant_keys(overrides: tuple[str, ...]) -> dict[str, str | None]:
    """Task, backbone, adapter, rank, basis and train set of the config composed from ``overrides``.

    Cached: composing takes ~0.3 s and a table has a few dozen variants. ``hydra.*`` overrides (launcher
    settings) do not change a result and are left out of the composition.
    """
    from randlora.utils.config import compose_config

    cfg = compose_config([NO_OUTPUT_DIR, *(o for o in overrides if not o.lstrip("+~").startswith("hydra"))],
                         return_hydra_config=True)
    adapter = cfg.adapter
    return {"task": cfg.task.name, "backbone": cfg.hydra.runtime.choices.backbone, "adapter": adapter.name,
            "rank": as_key(adapter.get("rank")) if adapter.name not in ("full", "none") else None,
            "basis": as_key(adapter.get("basis")), "train_set": as_key(cfg.task.get("train_set"))}


def make_cell(shared: Sequence[str], extra: Sequence[str] = (), *, dataset: str | None = None,
              regime: str | None = None, seed: int | None = None, hours: float | None = None,
              ignore: Iterable[str] = ()) -> Cell:
    """A cell from the overrides shared by its variant (``shared``), its regime, dataset and seed.

    ``extra`` (the command line's own overrides, e.g. ``debug=fast``) joins the overrides and the composed
    config, so the keys are those of the run it launches. ``ignore`` names keys not to check (a zero-shot
    cell's regime: it trains on nothing).
    """
    regime_part = regime_overrides(regime) if regime is not None else ()
    keys = dict(variant_keys(tuple(shared) + tuple(extra)))
    if regime is not None:
        keys["regime"] = regime
    if dataset is not None:
        keys["dataset"] = dataset
    if seed is not None:
        keys["seed"] = str(seed)
    for name in ignore:
        keys.pop(name, None)
    swept = ([f"task.dataset={dataset}"] if dataset is not None else []) + ([f"seed={seed}"] if seed is not None
                                                                             else [])
    return Cell(tuple(shared) + regime_part + tuple(extra) + tuple(swept), tuple(sorted(keys.items())), hours)


def _row_value(row: Mapping[str, Any], column: str) -> str | None:
    value = row.get(column)
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else as_key(value)


def done_cells(cells: Sequence[Cell], runs: pd.DataFrame | None) -> list[bool]:
    """For each cell, whether ``runs`` (the runs table) holds an ok run showing all of its keys."""
    if runs is None or not len(runs):
        return [False] * len(cells)
    ok = runs[runs["status"] == "ok"].to_dict("records")
    index: dict[tuple[str, ...], set[tuple]] = {}

    def seen(columns: tuple[str, ...]) -> set[tuple]:
        if columns not in index:
            index[columns] = {tuple(_row_value(row, c) for c in columns) for row in ok}
        return index[columns]

    return [tuple(v for _, v in cell.keys) in seen(tuple(k for k, _ in cell.keys)) for cell in cells]


def belongs(runs: pd.DataFrame, cells: Sequence[Cell]) -> pd.Series:
    """Which rows of ``runs`` are runs of one of ``cells`` (any status, any seed): this experiment's runs."""
    if not len(runs):
        return pd.Series([], dtype=bool)
    wanted: dict[tuple[str, ...], set[tuple]] = {}
    for cell in cells:
        keys = [(k, v) for k, v in cell.keys if k != "seed"]
        wanted.setdefault(tuple(k for k, _ in keys), set()).add(tuple(v for _, v in keys))
    rows = runs.to_dict("records")
    return pd.Series([any(tuple(_row_value(r, c) for c in columns) in values for columns, values in wanted.items())
                      for r in rows], index=runs.index)
