"""The short summary printed at the end of a run."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from rich.console import Console
from rich.table import Table


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def summary_table(result: Mapping, majority: float | None) -> Table:
    """A two-column table: test accuracy vs the majority class, parameters, time and memory."""
    metrics = result.get("metrics", {})
    params = result.get("params", {})
    trainable, total = params.get("trainable"), params.get("total")
    table = Table(title=f"{result.get('adapter')} on {result.get('backbone')} / {result.get('task')}",
                  show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    test = metrics.get("test/acc")
    table.add_row("test accuracy", f"{_percent(test)}   (majority class: {_percent(majority)})")
    for name, value in sorted(metrics.items()):
        if name.startswith("test/acc/"):
            table.add_row(f"  {name.removeprefix('test/acc/')}", _percent(value))
    table.add_row("best val accuracy", _percent(metrics.get("val/acc_best")))
    if trainable is not None and total:
        table.add_row("trainable / total", f"{trainable:,} / {total:,} ({100 * trainable / total:.2f}%)")
    table.add_row("wall time", f"{result.get('wall_time_s', 0):.1f} s"
                  + (f"   ({result['samples_per_s']:.0f} samples/s)" if result.get("samples_per_s") else ""))
    table.add_row("peak memory", f"{result.get('peak_memory_mb', 0):,.0f} MiB")
    return table


def print_summary(result: Mapping, result_path: Path | str, majority: float | None = None) -> None:
    """The table, then where the result went (printed whole, never shortened to the terminal width)."""
    Console().print(summary_table(result, majority))
    print(f"Result: {result_path}\nAdapter and logs: {Path(result_path).parent}", flush=True)
