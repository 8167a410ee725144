"""Running the benchmark: every case of each workload measured, timed steps interleaved across the cases.

The timed steps of a workload run round-robin (one step of every case, then the next round), so load from other
processes on a shared machine spreads evenly over the cases. All cases of a workload live at once: adapter cases
share the frozen base weights (no copy), FT has its own. Peak memory and FLOPs are measured per case, one case at a
time, before the timed rounds. A case that fails to set up is a row with its status and message, not a crash.
"""
from __future__ import annotations

import argparse
import gc
import re
import statistics
import tempfile
import time
from pathlib import Path

import torch

from randlora.adapters import count_parameters

from .measure import count_flops, device_label, measure_peak, set_up, time_step
from .report import CSV_COLUMNS, add_ratios
from .workloads import Case, Workload, make_cases, make_workload


def _failure(case: Case, workload: Workload, err: Exception) -> tuple[str, str]:
    """(status, notes): "unsupported" only when PEFT refuses a target type it is known not to handle."""
    message = " ".join(str(err).split())
    message = re.sub(r"Target module (\w+)\(.*?\) is not supported", r"Target module \1 is not supported", message)
    expected = case.impl == "peft" and case.method in workload.peft_unsupported and "not supported" in message
    return ("unsupported" if expected else "failed"), f"{type(err).__name__}: {message[:200]}"


def run_workload(workload: Workload, args: argparse.Namespace) -> list[dict]:
    """Measure every case of one workload; timed steps are interleaved across cases (round-robin).

    Interleaving spreads whatever else the machine is doing evenly over the cases, so their ratios stay fair on
    a shared machine. All cases live at once: adapter cases share the frozen base weights (`shared_copy`), FT
    gets its own copy. Peak memory is measured per case, one case at a time.
    """
    device = torch.device(args.device)
    batch_size = (args.llm_batch if workload.name == "llama" else args.batch) or workload.batch
    torch.manual_seed(0)
    base = workload.build().to(device).requires_grad_(False)
    torch.manual_seed(1)
    batch = workload.make_batch(batch_size, device)
    rows, runs = [], []
    for case in make_cases(workload, args.methods):
        row = {column: "" for column in CSV_COLUMNS}
        row.update(workload=workload.name, method=case.method, impl=case.impl, rank=case.rank, status="ok",
                   notes=case.notes, device=device_label(device), dtype=args.dtype, compiled=args.compile,
                   threads=torch.get_num_threads() if device.type == "cpu" else "", batch=batch_size,
                   tokens=batch_size * workload.tokens_per_item, steps=args.steps)
        rows.append(row)
        t0 = time.perf_counter()
        try:
            run = set_up(workload, case, base, batch, args)
            profile = Path(args.profile_dir) / f"{workload.name}-{case.impl}-{case.method}.txt" \
                if args.profile_dir else None
            run.peak_bytes = measure_peak(run, device, profile)
            run.flops = count_flops(run.eager_step)
            runs.append((row, run))
            shown = f"peak {run.peak_bytes / 2**20:.0f} MiB"
        except Exception as err:  # noqa: BLE001 - a library refusing a target is a result, not a crash
            row["status"], row["notes"] = _failure(case, workload, err)
            shown = row["notes"]
        print(f"[{workload.name}] {case.impl}:{case.method} r={case.rank}: set up, {shown} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    for i in range(args.steps):
        for _, run in runs:
            time_step(run, device)
        print(f"[{workload.name}] timed round {i + 1}/{args.steps}: "
              + ", ".join(f"{r.case.impl}:{r.case.method} {1e3 * r.times[-1]:.0f} ms" for _, r in runs), flush=True)
    for row, run in runs:
        with tempfile.TemporaryDirectory() as folder:
            file_bytes = run.save(Path(folder))
        path_note = "paths: " + ", ".join(f"{k} ×{v}" for k, v in sorted(run.paths.items())) if run.paths else ""
        row.update(trainable=count_parameters(run.model)[0], step_ms=1e3 * statistics.median(run.times),
                   step_ms_min=1e3 * min(run.times), step_cpu_ms=1e3 * statistics.median(run.cpu_times),
                   gflop=run.flops / 1e9, peak_mb=run.peak_bytes / 2**20, file_bytes=file_bytes,
                   _round_s=list(run.times), _round_cpu_s=list(run.cpu_times),
                   notes="; ".join(filter(None, [run.case.notes, path_note])))
    runs.clear()
    del base, batch
    if not args.tiny:  # a full collection costs ~0.5 s with torch, timm and transformers loaded
        gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def run_benchmark(args: argparse.Namespace) -> list[dict]:
    """The rows of every workload in `args.workloads`, with their ratio columns filled."""
    rows: list[dict] = []
    for name in args.workloads:
        rows.extend(run_workload(make_workload(name, args.tiny, args.layers), args))
    add_ratios(rows)
    return rows
