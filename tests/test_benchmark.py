"""scripts/benchmark.py: the tiny configuration end to end in a subprocess; randlora.benchmark's measuring helpers."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from randlora.benchmark import WORKLOADS, count_flops, live_bytes, paired_ratio, profiled_cpu_peak, shared_copy

REPO = Path(__file__).resolve().parents[1]
OURS = ["ft", "lora", "loraplus", "vera", "nola", "randlora", "randlora_sparse"]
PEFT = ["lora", "vera", "randlora"]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[list[dict], Path, str]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run([sys.executable, "scripts/benchmark.py", "--tiny", "--out", str(out)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    csvs = list(out.glob("cpu-*-tiny.csv"))
    assert len(csvs) == 1, list(out.iterdir())
    with csvs[0].open() as f:
        rows = list(csv.DictReader(f))
    return rows, out, done.stdout


def test_tiny_run_has_every_method_on_every_workload(tiny_run):
    rows, out, stdout = tiny_run
    seen = {(r["workload"], r["impl"], r["method"]): r for r in rows}
    for workload in ["vit", "clip", "llama"]:
        for method in OURS:
            assert seen[(workload, "ours", method)]["status"] == "ok", seen[(workload, "ours", method)]
        for method in PEFT:
            assert (workload, "peft", method) in seen
    for method in ["lora", "vera", "randlora"]:
        for impl in ["ours", "peft"]:
            assert seen[("clip_mlp", impl, method)]["status"] == "ok"
    # PEFT cannot adapt nn.MultiheadAttention with VeRA/RandLoRA: recorded with PEFT's own message, not a number
    for method in ["vera", "randlora"]:
        row = seen[("clip", "peft", method)]
        assert row["status"] == "unsupported" and "not supported" in row["notes"] and row["step_ms"] == ""
    assert seen[("clip", "peft", "lora")]["status"] == "ok"
    assert list(out.glob("cpu-*-tiny.png"))
    assert "×LoRA" in stdout and "wrote" in stdout
    assert list(dict.fromkeys(r["workload"] for r in rows)) == list(WORKLOADS)  # --tiny: every workload, 1 step
    assert {r["steps"] for r in rows} == {"1"} and {r["threads"] for r in rows} == {"1"}


def test_tiny_run_values_are_sane(tiny_run):
    rows, _, _ = tiny_run
    for r in rows:
        if r["status"] != "ok":
            continue
        trainable, file_bytes = int(r["trainable"]), int(r["file_bytes"])
        assert float(r["step_ms"]) > 0 and float(r["step_cpu_ms"]) > 0 and float(r["step_ms_min"]) > 0
        assert 0 < float(r["peak_mb"]) < 4096 and trainable > 0 and file_bytes > 0 and float(r["gflop"]) > 0
        assert r["device"] == "cpu" and r["dtype"] == "float32" and int(r["tokens"]) > 0
        if r["impl"] == "ours":  # only trainable tensors + config: ≤ 4 bytes × trainable + 1 MB
            assert file_bytes <= 4 * trainable + 1_000_000, r
        if r["method"] == "lora":
            assert float(r["ratio_to_lora"]) == 1.0 and float(r["peak_ratio_to_lora"]) == 1.0
        if r["method"] == "ft":
            assert float(r["ratio_to_ft"]) == 1.0
    by = {(r["workload"], r["impl"], r["method"]): r for r in rows}
    for w in ["vit", "llama"]:
        # FT trains everything; PEFT stores RandLoRA's bases in its file, we regenerate them from the seed
        assert int(by[(w, "ours", "ft")]["trainable"]) > int(by[(w, "ours", "lora")]["trainable"])
        assert int(by[(w, "peft", "randlora")]["file_bytes"]) > 5 * int(by[(w, "ours", "randlora")]["file_bytes"])
        # the same method counts the same trainable parameters in both implementations
        for method in PEFT:
            assert by[(w, "ours", method)]["trainable"] == by[(w, "peft", method)]["trainable"]
        assert by[(w, "ours", "randlora")]["ratio_to_peft_same_method"] != ""
        assert "paths:" in by[(w, "ours", "randlora")]["notes"]
        # LoRA is the same products in both libraries, whatever kernels each calls (ours: in-place addmm_)
        assert float(by[(w, "ours", "lora")]["flop_ratio_to_peft_same_method"]) == pytest.approx(1.0, abs=0.01)


# --- helpers --------------------------------------------------------------------------------------------
def test_time_ratios_pair_the_cases_round_by_round():
    """Load drifting between rounds cancels: the ratio is the median of same-round ratios, not of medians."""
    mine = {"step_ms": 10.0, "_round_s": [1.0, 10.0, 10.5]}
    theirs = {"step_ms": 10.0, "_round_s": [1.1, 11.0, 10.0]}  # the same medians, but 10 % slower in 2 rounds of 3
    assert paired_ratio(mine, theirs, "step_ms") == pytest.approx(1 / 1.1, abs=1e-3)
    assert paired_ratio({"peak_mb": 3.0}, {"peak_mb": 2.0}, "peak_mb") == 1.5  # one value per case: plain ratio
    assert paired_ratio(mine, None, "step_ms") == ""


def test_count_flops_counts_forward_backward_and_in_place_products():
    layer, x = nn.Linear(8, 4), torch.randn(3, 8, requires_grad=True)
    extra_a, extra_b = torch.randn(3, 5), torch.randn(5, 4)

    def step() -> None:
        y = layer(x)  # 2·3·8·4 = 192 forward; backward: dL/dx 192 and dL/dW 192
        y.detach().clone().addmm_(extra_a, extra_b)  # in-place GEMM: 2·3·5·4 = 120
        y.sum().backward()

    assert count_flops(step) == 3 * 192 + 120


def test_live_bytes_counts_shared_storage_once():
    weight = torch.zeros(100, 10)
    a, b = nn.Linear(10, 100), nn.Linear(10, 100)
    a.weight, b.weight = nn.Parameter(weight), nn.Parameter(weight)
    optimizer = torch.optim.AdamW([a.weight], lr=1e-3)
    a(torch.randn(2, 10)).sum().backward()
    optimizer.step()
    # shared weight once, 2 biases, the 2 gradients of a, exp_avg and exp_avg_sq of the weight, Adam's step
    expected = 4 * (1000 + 100 + 100 + 1000 + 100 + 2 * 1000) + 4
    assert live_bytes(a, b, optimizer) == expected


def test_profiled_peak_sees_torch_allocations():
    def step():
        a = torch.ones(1_000_000)  # 4 MB
        b = a * 2  # +4 MB
        del a
        c = torch.ones(2_000_000)  # +8 MB: peak 12 MB
        del b, c

    peak = profiled_cpu_peak(step, None)
    assert 12_000_000 <= peak < 12_100_000


def test_shared_copy_shares_frozen_weights_not_modules():
    base = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)).requires_grad_(False)
    copy_ = shared_copy(base)
    assert copy_[0] is not base[0]
    assert copy_[0].weight is base[0].weight
    from randlora.adapters import inject

    inject(copy_, dict(name="lora", rank=2, targets=["0"]))
    assert isinstance(base[0], nn.Linear) and not any(p.requires_grad for p in base.parameters())


def test_cli_errors_name_the_bad_value():
    """Bad arguments: exit 2 with argparse's one line naming the option and the value, before any model is built."""
    for argv, message in ((["--workloads", "vit,resnet"], "--workloads: unknown ['resnet']; choose from vit, clip"),
                          (["--steps", "0"], "--steps 0 and --warmup 1 must both be >= 1")):
        done = subprocess.run([sys.executable, "scripts/benchmark.py", *argv], cwd=REPO, env=ENV, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr.splitlines()[-1], done.stderr
        assert done.stdout == ""


@pytest.mark.slow
def test_compiled_tiny_run_times_every_adapter_of_ours(tmp_path):
    """`--compile` (inductor) runs every adapter; FLOPs are counted on the eager model, so they match eager's."""
    methods = "ours:ft,ours:lora,ours:vera,ours:nola,ours:randlora"
    for flag in ([], ["--compile"]):
        done = subprocess.run([sys.executable, "scripts/benchmark.py", "--tiny", "--workloads", "vit", "--methods",
                               methods, "--out", str(tmp_path), *flag], cwd=REPO, env=ENV, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {}
    for name in ("cpu-*-compile-tiny.csv", "cpu-????-??-??-tiny.csv"):
        (path,) = tmp_path.glob(name)
        with path.open() as f:
            rows[name] = {r["method"]: r for r in csv.DictReader(f)}
    compiled, eager = rows.values()
    assert set(compiled) == {"ft", "lora", "vera", "nola", "randlora"}
    for method, row in compiled.items():
        assert row["status"] == "ok" and row["compiled"] == "True" and eager[method]["compiled"] == "False", row
        assert float(row["gflop"]) == float(eager[method]["gflop"]) > 0
