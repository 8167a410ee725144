"""Training-step benchmark of our adapters against full fine-tuning and PEFT (`scripts/benchmark.py` is its CLI).

Same random-initialised models, same batch, matched parameter budgets; nothing is downloaded. The parts:
    workloads.py  the models, batches, losses and targets (`make_workload`) and the cases run on each
                  (`make_cases`: FT, LoRA, LoRA+, VeRA, NoLA, RandLoRA dense/sparse, PEFT's LoRA/VeRA/RandLoRA)
    measure.py    one case set up on the shared frozen base (`set_up`), its step time, peak memory and FLOPs
    runner.py     every case of a workload, timed steps interleaved round-robin (`run_workload`, `run_benchmark`)
    report.py     ratio columns (`add_ratios`), the printed table, the CSV and the plot
Results and how to read them: benchmarks/README.md.
"""
from .measure import count_flops, device_label, live_bytes, measure_peak, profiled_cpu_peak, set_up, shared_copy
from .report import (CSV_COLUMNS, RATIO_COLUMNS, add_ratios, output_stem, paired_ratio, plot, print_table, write_csv,
                     write_outputs)
from .runner import run_benchmark, run_workload
from .workloads import WORKLOADS, Case, Workload, make_cases, make_workload, randlora_rank

__all__ = ["CSV_COLUMNS", "RATIO_COLUMNS", "WORKLOADS", "Case", "Workload", "add_ratios", "count_flops",
           "device_label", "live_bytes", "make_cases", "make_workload", "measure_peak", "output_stem", "paired_ratio",
           "plot", "print_table", "profiled_cpu_peak", "randlora_rank", "run_benchmark", "run_workload", "set_up",
           "shared_copy", "write_csv", "write_outputs"]
