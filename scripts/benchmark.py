"""Training-step benchmark: our adapters against full fine-tuning and PEFT, same models, inputs and budgets.

    python scripts/benchmark.py [--device cpu|cuda] [--dtype float32|bfloat16] [--workloads vit,clip,clip_mlp,llama]
                                [--methods ours:randlora,peft:randlora,...] [--steps N] [--warmup N]
                                [--batch N] [--llm-batch N] [--layers N] [--threads N] [--out results/bench]
                                [--tiny] [--compile] [--profile-dir DIR]

Writes <out>/<device>-<date>.csv (a row per case) and .png, prints a table; exits 1 when a case failed (PEFT refusing
a target it cannot adapt is "unsupported", not failed), 2 on bad arguments. What is measured and how: the logic in
randlora/benchmark/ (this script only wires it); results: benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the CPU profiler's start/stop banners
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from randlora.benchmark import WORKLOADS, device_label, output_stem, run_benchmark, write_outputs  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:i]")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="compute dtype: float32, or autocast to bfloat16/float16 with float32 weights")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma list from {', '.join(WORKLOADS)}")
    parser.add_argument("--methods", default=None,
                        help="comma list of methods (lora) or impl:method keys (peft:randlora); default: all")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per case (default 2 on CPU, 20 on GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 1 on CPU, 5 on GPU)")
    parser.add_argument("--batch", type=int, default=None,
                        help="images per step for vit, clip and clip_mlp (default: vit 32, clip 128)")
    parser.add_argument("--llm-batch", type=int, default=None,
                        help="sequences of 256 tokens per step for llama (default 1)")
    parser.add_argument("--layers", type=int, default=None,
                        help="blocks per model (per tower for CLIP); default: vit 2, clip 1 + 1, llama 2")
    parser.add_argument("--out", default="results/bench", help="folder for the CSV and the plot")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes, 1 step: the test-suite configuration")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 with --tiny)")
    parser.add_argument("--compile", action="store_true",
                        help="time torch.compile(model) (default inductor backend) instead of eager; FLOPs stay eager")
    parser.add_argument("--profile-dir", default=None,
                        help="CPU: write torch.profiler's op table of the memory step of each case here")
    args = parser.parse_args(argv)
    gpu = args.device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    args.steps = args.steps if args.steps is not None else (1 if args.tiny else 20 if gpu else 2)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 5 if gpu else 1)
    if args.steps < 1 or args.warmup < 1:
        parser.error(f"--steps {args.steps} and --warmup {args.warmup} must both be >= 1")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"--workloads: unknown {unknown}; choose from {', '.join(WORKLOADS)}")
    args.methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = args.threads or (1 if args.tiny else None)
    if threads:
        torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    rows = run_benchmark(args)
    write_outputs(rows, Path(args.out), output_stem(device_label(torch.device(args.device)), args.compile, args.tiny))
    return 1 if any(r["status"] == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
