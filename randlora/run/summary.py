"""The short summary printed at the end of a run, and written at the end of its ``train.log``.

It shows the task's own metric (accuracy as a percentage next to the majority class; an error such as the
synthetic task's ``rel_error`` as a number), the adapter with its rank and learning rate, the dataset, the
parameter counts, time and memory.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

from rich.console import Console
from rich.table import Table


def task_metric(metrics: Mapping[str, float]) -> str | None:
    """The run's own metric: ``acc`` when ``val/acc_best`` was recorded, ``rel_error`` for ``val/rel_error_best``,
    else the first ``test/<name>`` (majority baseline aside); None when there is none."""
    for key in sorted(metrics):
        if key.startswith("val/") and key.endswith("_best"):
            return key[len("val/"):-len("_best")]
    tests = sorted(k.split("/")[1] for k in metrics if k.startswith("test/") and k != "test/majority_acc")
    return tests[0] if tests else None


LABELS = {"acc": "accuracy"}  # metric -> how the summary names it (others by their own name)


def show(metric: str, value: float | None) -> str:
    """Accuracies as percentages; other metrics (errors) as numbers."""
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if metric.endswith("acc") else f"{value:.4f}"


def _dataset(result: Mapping) -> str | None:
    task_config = (result.get("config") or {}).get("task") or {}
    return result.get("subtask") or task_config.get("dataset")


def adapter_line(result: Mapping) -> str:
    """``randlora, rank 6, lr 0.0005`` (plus ``lr_ratio`` for LoRA+, ``budget`` when the rank was matched)."""
    parts = [str(result.get("adapter"))]
    for key, label in (("rank", "rank"), ("lr", "lr"), ("lr_ratio", "lr_ratio"), ("budget", "budget")):
        if result.get(key) is not None:
            parts.append(f"{label} {result[key]:g}" if isinstance(result[key], float) else f"{label} {result[key]}")
    return ", ".join(parts)


def summary_table(result: Mapping, majority: float | None) -> Table:
    """A two-column table: the test metric (vs the majority class for accuracy), adapter, data, size, time."""
    metrics = result.get("metrics", {})
    params = result.get("params", {})
    trainable, total = params.get("trainable"), params.get("total")
    metric = task_metric(metrics) or "acc"
    dataset = _dataset(result)
    where = f"{result.get('task')}" + (f" / {dataset}" if dataset else "")
    table = Table(title=f"{result.get('adapter')} on {result.get('backbone')} / {where}", show_header=False,
                  title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    label = LABELS.get(metric, metric)
    test = show(metric, metrics.get(f"test/{metric}"))
    if metric == "acc":
        test += f"   (majority class: {show(metric, majority)})"
    table.add_row(f"test {label}", test)
    for name, value in sorted(metrics.items()):
        if name.startswith(f"test/{metric}/"):
            table.add_row(f"  {name.removeprefix(f'test/{metric}/')}", show(metric, value))
    table.add_row(f"best val {label}", show(metric, metrics.get(f"val/{metric}_best")))
    table.add_row("adapter", adapter_line(result))
    if dataset:
        table.add_row("dataset", str(dataset))
    if trainable is not None and total:
        table.add_row("trainable / total", f"{trainable:,} / {total:,} ({100 * trainable / total:.2f}%)")
    table.add_row("wall time", f"{result.get('wall_time_s') or 0:.1f} s"
                  + (f"   ({_rate(result['samples_per_s'])} samples/s)" if result.get("samples_per_s") else ""))
    table.add_row("peak memory", f"{result.get('peak_memory_mb') or 0:,.0f} MiB")
    return table


def _rate(per_s: float) -> str:
    """A throughput with two significant digits below 10/s (0.44, not 0), whole numbers above."""
    return f"{per_s:,.0f}" if per_s >= 10 else f"{per_s:.2g}"


def _log_files() -> list[logging.FileHandler]:
    """The file handlers of the root logger: Hydra's ``<run>/train.log`` in a ``python train.py`` run."""
    return [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


def print_summary(result: Mapping, result_path: Path | str, majority: float | None = None) -> None:
    """The table, then where the result went (printed whole, never shortened to the terminal width); the same
    text ends the run's log file."""
    console = Console(record=True)
    console.print(summary_table(result, majority))
    where = f"Result: {result_path}\nAdapter and logs: {Path(result_path).parent}"
    print(where, flush=True)
    text = console.export_text() + where + "\n"
    for handler in _log_files():
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        finally:
            handler.release()
