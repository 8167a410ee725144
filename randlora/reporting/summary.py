"""Summarise the runs table over seeds, and choose what a table cell or plot point reports.

:func:`summarise` gives one row per configuration (every key column of :func:`key_columns`): ``<col>:mean`` and
``<col>:std`` (ddof=1, NaN below two seeds) over the ``ok`` runs only, ``n`` of them, ``n_failed`` failed or
interrupted runs that are counted but never averaged, and the ``seeds`` used. A configuration with only failed or
interrupted runs has ``status == "failed"`` and n = 0; duplicate runs (re-runs of a seed, see
:mod:`randlora.reporting.runs`) are left out, and corrupt and incomplete runs have no trustworthy configuration:
all three are listed by :func:`~randlora.reporting.runs.failures` instead. An expected grid adds ``status == "missing"`` rows for
configurations that have no run at all.
"""
from __future__ import annotations

import math
import re
from itertools import product
from typing import Any, Iterable, Sequence

import pandas as pd

from randlora.reporting.runs import INFO_COLUMNS, REPLICATE_COLUMNS, VALUE_COLUMNS

COUNT_COLUMNS = ["status", "n", "n_failed", "seeds", "config_differs"]


def norm_key(value: Any) -> Any:
    """A comparable key value: NaN/None -> None, integral floats -> int (``8.0`` -> ``8``)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value) if isinstance(value, float) and value.is_integer() else value


def key_columns(frame: pd.DataFrame) -> list[str]:
    """The configuration columns of a runs or summary table: all but seeds, info, measurements and counts."""
    skip = set(REPLICATE_COLUMNS + INFO_COLUMNS + VALUE_COLUMNS + COUNT_COLUMNS)
    return [c for c in frame.columns if c not in skip and "/" not in c and ":" not in c and not c.startswith("n_")]


def select_rows(frame: pd.DataFrame, **values: Any) -> pd.DataFrame:
    """The rows of ``frame`` whose columns equal ``values`` (None matches null; empty if a column is absent)."""
    mask = pd.Series(True, index=frame.index)
    for column, value in values.items():
        if column not in frame.columns:
            return frame.iloc[0:0]
        mask &= frame[column].isna() if norm_key(value) is None else frame[column] == value
    return frame[mask]


def summarise(runs: pd.DataFrame, expected: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per configuration of ``runs``: mean, std and n over the seeds of its ok runs (module docstring).

    ``expected`` (a frame of configuration keys, e.g. from :func:`expected_grid`) adds a ``missing`` row for each
    of its rows that matches no configuration on the columns it names.
    """
    keys = key_columns(runs)
    values = [c for c in runs.columns if c in VALUE_COLUMNS or "/" in c]  # measurements and metrics
    columns = keys + COUNT_COLUMNS + [f"{c}:{s}" for c in values for s in ("mean", "std")]
    usable = runs[runs["status"].isin(["ok", "failed", "interrupted"])]
    ok = usable["status"] == "ok"
    usable = usable.assign(n=ok.astype(int), n_failed=(~ok).astype(int), seeds=usable["seed"].where(ok))
    usable.loc[~ok, values] = math.nan  # failed runs never enter a mean
    grouped = usable.groupby(keys, dropna=False, sort=True)
    stats = grouped[values].agg(["mean", "std"])
    stats.columns = [f"{c}:{s}" for c, s in stats.columns]
    counts = grouped.agg(n=("n", "sum"), n_failed=("n_failed", "sum"), config_differs=("config_differs", "first"),
                         seeds=("seeds", lambda s: ",".join(str(int(v)) for v in sorted(s.dropna()))))
    summary = counts.join(stats).reset_index()
    summary["status"] = ["ok" if n else "failed" for n in summary["n"]]
    summary = summary.reindex(columns=columns)
    return summary if expected is None else _add_missing(summary, expected, keys)


def _add_missing(summary: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``summary`` plus a ``status == "missing"`` row per configuration of ``expected`` that has no row."""
    unknown = [c for c in expected.columns if c not in keys]
    if unknown:
        raise KeyError(f"expected-grid columns {unknown} are not configuration keys; allowed: {keys}")
    grid = list(expected.columns)
    present = {tuple(map(norm_key, row)) for row in summary[grid].itertuples(index=False)}
    wanted = dict.fromkeys(tuple(map(norm_key, row)) for row in expected.itertuples(index=False))
    missing = [{**dict(zip(grid, cell)), "status": "missing", "n": 0, "n_failed": 0, "seeds": ""}
               for cell in wanted if cell not in present]
    if not missing:
        return summary
    return pd.concat([summary, pd.DataFrame(missing, columns=summary.columns)], ignore_index=True)


def expected_grid(**axes: Iterable[Any]) -> pd.DataFrame:
    """Every combination of the given axes, e.g. ``expected_grid(adapter=["lora"], rank=[4, 8])``."""
    return pd.DataFrame(list(product(*axes.values())), columns=list(axes))


def average_over(summary: pd.DataFrame, column: str, metrics: Sequence[str]) -> pd.DataFrame:
    """The ok configurations of ``summary`` averaged over the values of ``column`` (e.g. Figure 3's datasets).

    Per metric over the D values: mean = mean of the means; std = sqrt(sum of variances) / D, the std of that
    average when the D values vary independently over seeds (NaN if any part is NaN); ``peak_memory_mb`` takes
    the largest mean instead. Adds ``n_<column>`` = D; ``n`` is the smallest seed count, ``n_failed`` the total.
    """
    keys = [k for k in key_columns(summary) if k != column]
    rows = []
    for key, members in summary[summary["status"] == "ok"].groupby(keys, dropna=False, sort=True):
        row = {**dict(zip(keys, key)), "status": "ok", "n": members["n"].min(), "n_failed": members["n_failed"].sum(),
               "seeds": "", f"n_{column}": len(members)}
        for metric in metrics:
            means, stds = members[f"{metric}:mean"], members[f"{metric}:std"]
            if metric == "peak_memory_mb":
                row[f"{metric}:mean"], row[f"{metric}:std"] = means.max(), math.nan
            else:
                row[f"{metric}:mean"] = means.mean(skipna=False)
                row[f"{metric}:std"] = math.sqrt((stds ** 2).sum(skipna=False)) / len(stds)
        rows.append(row)
    columns = keys + COUNT_COLUMNS + [f"n_{column}"] + [f"{m}:{s}" for m in metrics for s in ("mean", "std")]
    return pd.DataFrame(rows, columns=columns)


def lower_is_better(metric: str) -> bool:
    """True for error-like metrics (``test/rel_error``, ``val/loss``), False for accuracies."""
    return bool(re.search(r"error|loss|mse|perplexity", metric.rsplit("/", 1)[-1]))


def metric_scale(metric: str) -> float:
    """100 for accuracies and shares (stored as fractions, shown in %), 1 for everything else."""
    return 100.0 if metric.split("/")[1].startswith(("acc", "extracted")) else 1.0


def metric_label(metric: str) -> str:
    """``test/acc`` -> "test accuracy (%)", ``test/rel_error`` -> "test rel_error (lower is better)",
    ``test/extracted`` -> "test answers extracted (%)"."""
    split, name = metric.split("/", 1)
    if name.startswith("extracted"):
        return f"{split} answers extracted{' ' + name[9:].strip('/') if name[9:] else ''} (%)"
    if metric_scale(metric) == 100.0:
        return f"{split} accuracy{' ' + name[3:].strip('/_') if name[3:] else ''} (%)"
    return f"{split} {name}" + (" (lower is better)" if lower_is_better(metric) else "")


def validation_column(rows: pd.DataFrame, metric: str) -> str | None:
    """The validation counterpart of ``metric`` that ``rows`` measured (``val/<name>_best``, else ``val/<name>``)."""
    name = metric.partition("/")[2]
    return next((c for c in (f"val/{name}_best", f"val/{name}") if f"{c}:mean" in rows.columns
                 and rows[f"{c}:mean"].notna().any()), None)


def pick_best(rows: pd.DataFrame, metric: str) -> tuple[pd.Series | None, str | None]:
    """The ok row with ``metric`` to report when several share a table cell or plot point, and a note saying so.

    Chosen by the validation counterpart of ``metric`` (``val/<name>_best``, else ``val/<name>``), never by the
    test metric itself; without one, the row with the most seeds. ``(None, None)`` when no row qualifies.
    """
    rows = rows[rows["status"] == "ok"]
    if f"{metric}:mean" in rows.columns:
        rows = rows[rows[f"{metric}:mean"].notna()]
    if len(rows) < 2:
        return (rows.iloc[0], None) if len(rows) else (None, None)
    val = validation_column(rows, metric)
    if val is None:
        return rows.sort_values("n", ascending=False, kind="stable").iloc[0], \
            f"{len(rows)} configurations; no validation metric, most seeds shown"
    ordered = rows.sort_values(f"{val}:mean", ascending=lower_is_better(val), na_position="last", kind="stable")
    return ordered.iloc[0], f"{len(rows)} configurations; best {val} shown"


def best_per(summary: pd.DataFrame, by: Sequence[str], metric: str) -> pd.DataFrame:
    """One ok row per combination of the ``by`` columns (e.g. adapter and rank), chosen by :func:`pick_best`."""
    groups = summary[summary["status"] == "ok"].groupby(list(by), dropna=False, sort=False)
    chosen = [best for _, members in groups if (best := pick_best(members, metric)[0]) is not None]
    return pd.DataFrame(chosen, columns=summary.columns)


def measured_test_metrics(summary: pd.DataFrame) -> list[str]:
    """Every test metric some configuration measured (``test/acc``, ``test/rel_error``), subtasks and the
    majority baseline aside: what the tables and figures are made for when no metric is asked for."""
    names = [c[: -len(":mean")] for c in summary.columns if c.startswith("test/") and c.endswith(":mean")]
    return sorted(n for n in names
                  if n.count("/") == 1 and n != "test/majority_acc" and summary[f"{n}:mean"].notna().any())
