"""The benchmark's rows compared and written out: ratio columns, the printed table, the CSV and the plot.

Ratios: ratio_* (step_ms), cpu_ratio_* (step_cpu_ms), peak_ratio_* (peak_mb) and flop_ratio_* (gflop), each
_to_lora against the LoRA of the same implementation on the same workload, _to_ft against FT, and
_to_peft_same_method against PEFT's row for the same method (LoRA+ against PEFT LoRA, sparse RandLoRA against
PEFT's dense RandLoRA). Time ratios are medians over the timed rounds of the two cases' ratio within a round: a
round runs every case back to back, so load that drifts between rounds cancels.
Output: one CSV row per case (`CSV_COLUMNS`), a PNG of step time and peak memory per case, and a printed table.
"""
from __future__ import annotations

import csv
import datetime as dt
import statistics
import sys
from pathlib import Path
from typing import Any

RATIO_COLUMNS = ["ratio_to_lora", "ratio_to_ft", "ratio_to_peft_same_method", "cpu_ratio_to_lora", "cpu_ratio_to_ft",
                 "cpu_ratio_to_peft_same_method", "peak_ratio_to_lora", "peak_ratio_to_peft_same_method",
                 "flop_ratio_to_lora", "flop_ratio_to_ft", "flop_ratio_to_peft_same_method"]
RATIO_OF = {"ratio": "step_ms", "cpu_ratio": "step_cpu_ms", "peak_ratio": "peak_mb", "flop_ratio": "gflop"}
CSV_COLUMNS = ["workload", "method", "impl", "rank", "trainable", "step_ms", "step_ms_min", "step_cpu_ms", "gflop",
               "peak_mb", "file_bytes", *RATIO_COLUMNS, "status", "notes", "device", "dtype", "compiled", "threads",
               "batch", "tokens", "steps"]


def add_ratios(rows: list[dict]) -> None:
    """Fill the ratio columns from the rows of the same workload."""
    def find(workload: str, impl: str, method: str) -> dict | None:
        for row in rows:
            if (row["workload"], row["impl"], row["method"], row["status"]) == (workload, impl, method, "ok"):
                return row
        return None

    peft_of = {"lora": "lora", "loraplus": "lora", "vera": "vera", "randlora": "randlora",
               "randlora_sparse": "randlora"}
    for row in rows:
        if row["status"] != "ok":
            continue
        w = row["workload"]
        lora, ft = find(w, row["impl"], "lora"), find(w, "ours", "ft")
        peft = find(w, "peft", peft_of[row["method"]]) if row["method"] in peft_of else None
        references = {"lora": lora, "ft": ft, "peft_same_method": peft}
        for column in RATIO_COLUMNS:  # e.g. peak_ratio_to_lora: peak_mb against the LoRA row
            metric, reference = column.split("_to_")
            row[column] = paired_ratio(row, references[reference], RATIO_OF[metric])


ROUND_TIMES = {"step_ms": "_round_s", "step_cpu_ms": "_round_cpu_s"}  # per-round times kept out of the CSV


def paired_ratio(row: dict, reference: dict | None, key: str) -> float | str:
    """``row[key] / reference[key]``; for step times, the median over timed rounds of the two cases' ratio in the
    same round. Cases of a round run back to back, so pairing cancels load that drifts between rounds."""
    if reference is None or not reference[key]:
        return ""
    mine, theirs = row.get(ROUND_TIMES.get(key, "")), reference.get(ROUND_TIMES.get(key, ""))
    if mine and theirs and len(mine) == len(theirs) and all(theirs):
        return round(statistics.median(a / b for a, b in zip(mine, theirs)), 3)
    return round(row[key] / reference[key], 3)


def print_table(rows: list[dict], file=sys.stdout) -> None:
    """The rows as an aligned text table (times in ms, memory in MiB, file in MB, ratios as ×)."""
    columns = [("workload", "workload"), ("method", "method"), ("impl", "impl"), ("rank", "rank"),
               ("trainable", "trainable"), ("step_ms", "step_ms"), ("step_cpu_ms", "cpu_ms"), ("gflop", "GFLOP"),
               ("peak_mb", "peak_mb"),
               ("file_bytes", "file_MB"), ("ratio_to_lora", "×LoRA"), ("ratio_to_ft", "×FT"),
               ("ratio_to_peft_same_method", "×PEFT"), ("cpu_ratio_to_lora", "cpu×LoRA"),
               ("cpu_ratio_to_ft", "cpu×FT"), ("cpu_ratio_to_peft_same_method", "cpu×PEFT"),
               ("flop_ratio_to_lora", "flop×LoRA"), ("flop_ratio_to_ft", "flop×FT"),
               ("peak_ratio_to_lora", "mem×LoRA"),
               ("peak_ratio_to_peft_same_method", "mem×PEFT"), ("status", "status")]

    def cell(row: dict, key: str) -> str:
        value = row.get(key, "")
        if value == "" or value is None:
            return ""
        if key == "file_bytes":
            return f"{value / 1e6:.2f}"
        if key == "trainable":
            return f"{value:,}"
        if key in ("step_ms", "step_cpu_ms", "peak_mb"):
            return f"{value:.0f}"
        if key == "gflop":
            return f"{value:.1f}"
        return str(value)

    lines = [[title for _, title in columns]] + [[cell(r, key) for key, _ in columns] for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    for i, line in enumerate(lines):
        print("  ".join(c.rjust(w) if j > 2 else c.ljust(w) for j, (c, w) in enumerate(zip(line, widths))), file=file)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=file)


def plot(rows: list[dict], path: Path) -> None:
    """Step time and peak memory per case, one column of panels per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    fig, axes = plt.subplots(2, len(workloads), figsize=(4.2 * len(workloads), 7), squeeze=False)
    for col, workload in enumerate(workloads):
        shown = [r for r in rows if r["workload"] == workload]
        labels = [f"{r['method']}\n({r['impl']})" for r in shown]
        colors = ["tab:orange" if r["impl"] == "peft" else "tab:red" if r["method"].startswith("randlora")
                  else "tab:gray" if r["method"] == "ft" else "tab:blue" for r in shown]
        for row_i, (key, unit) in enumerate([("step_ms", "step time (ms)"), ("peak_mb", "peak memory (MiB)")]):
            ax = axes[row_i][col]
            values = [r[key] if r["status"] == "ok" else 0 for r in shown]
            ax.barh(range(len(shown)), values, color=colors)
            for i, r in enumerate(shown):
                if r["status"] != "ok":
                    ax.text(0, i, f" {r['status']}", va="center", fontsize=7, color="tab:orange")
            ax.set_yticks(range(len(shown)), labels, fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel(unit)
            if row_i == 0:
                ax.set_title(workload)
    fig.suptitle(f"training step, {rows[0]['device']} {rows[0]['dtype']} (blue: ours, orange: PEFT, red: "
                 "RandLoRA ours, gray: FT)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(k, v) for k, v in row.items() if k in CSV_COLUMNS})


def _csv_value(key: str, value: Any) -> Any:
    if not isinstance(value, float):
        return value
    return float(f"{value:.4g}") if key == "gflop" else round(value, 2)  # tiny runs count kFLOPs


def output_stem(device: str, compiled: bool, tiny: bool) -> str:
    """File name of a run's CSV and plot without the suffix: ``<device>-<date>[-compile][-tiny]``."""
    return f"{device}-{dt.date.today().isoformat()}" + ("-compile" if compiled else "") + ("-tiny" if tiny else "")


def write_outputs(rows: list[dict], out: Path, stem: str) -> None:
    """``<out>/<stem>.csv`` and ``.png``, then the table and where they went on stdout."""
    write_csv(rows, out / f"{stem}.csv")
    plot(rows, out / f"{stem}.png")
    print()
    print_table(rows)
    print(f"\nwrote {out / (stem + '.csv')} and {out / (stem + '.png')}")
