"""Training-step benchmark: our adapters against full fine-tuning and PEFT, same models, inputs and budgets.

    python scripts/benchmark.py [--device cpu|cuda] [--dtype float32|bfloat16] [--workloads vit,clip,clip_mlp,llama]
                                [--methods ours:randlora,peft:randlora,...] [--steps N] [--warmup N]
                                [--batch N] [--llm-batch N] [--layers N] [--threads N] [--out results/bench]
                                [--tiny] [--profile-dir DIR]

Every workload is a random-initialised model and a random batch (nothing is downloaded):
    vit       timm VisionTransformer, ViT-B/16 shape (width 768, 12 heads, MLP 3072) with 2 blocks, batch 32 × 197
              tokens, cross-entropy over 100 classes; targets attn.qkv, mlp.fc1, mlp.fc2.
    clip      open_clip CLIP, ViT-B/32 shape: vision tower width 768 (50 tokens per image), text tower width 512
              (77 tokens), 1 layer each, batch 128 images against 32 class prompts (classification by cosine
              similarity, both towers trained); targets clip_all (attention in_proj through a parametrization,
              mlp.c_fc, mlp.c_proj). PEFT's VeRA and RandLoRA cannot adapt nn.MultiheadAttention: their rows
              keep PEFT's own error message with status "unsupported"; PEFT's LoRA can and is measured.
    clip_mlp  the same model with targets clip_mlp (all PEFT can adapt): LoRA, VeRA, RandLoRA, ours and PEFT's.
    llama     transformers LlamaForCausalLM, width 2048, MLP 8192, 32 heads (8 key-value heads), 2 layers,
              vocabulary 32000, batch 1 × 256 tokens, next-token loss; targets q, k, v, up, down.
--batch, --llm-batch and --layers change these sizes (e.g. --layers 12 --batch 128 for full-depth models).

Methods, with identical frozen weights and batch: FT (every parameter), LoRA r=32 (α = 2r), LoRA+ (same layers,
lr ratio 16), VeRA r=256, NoLA (1024 rank-1 bases), RandLoRA dense and sparse with the rank whose trainable count
is closest to LoRA r=32's (`match_rank`), and PEFT's LoRA, VeRA and RandLoRA with the same ranks and scales.

Metrics, per case:
    step_ms      median wall time of a training step: forward + loss + backward + AdamW step + zero_grad, over
                 --steps steps after --warmup steps (CUDA synchronised before and after each step). The timed
                 steps are interleaved across the cases of a workload (round-robin), so load from other
                 processes on a shared machine spreads evenly over them.
    step_cpu_ms  median CPU time of this process per step (all threads).
    gflop        floating-point operations of one step's matrix products (forward + backward, 2 per multiply-add),
                 counted by torch's FlopCounterMode from operand shapes: free of timing noise, so the structural cost
                 of each method can be compared even on a busy machine. Elementwise work and AdamW are not counted.
    peak_mb      peak memory held by this case's tensors during a step, in MiB: the bytes live when a step
                 starts (distinct storages of parameters, buffers, gradients, optimizer state and the batch) plus
                 the most the step allocates on top of them. CUDA: max_memory_allocated − memory_allocated around
                 the step. CPU: the peak of the running sum of allocations minus frees that torch.profiler
                 (profile_memory=True) records during one extra, untimed step. Both count what the allocator hands
                 out, not what the process keeps in free lists, and the same way on both devices.
    trainable    trainable parameters;  file_bytes: size of the saved adapter (ours: `save_adapter`, one
                 safetensors file; PEFT: `save_pretrained` with its defaults, VeRA/RandLoRA projections included).
Ratios: ratio_* (step_ms), cpu_ratio_* (step_cpu_ms), peak_ratio_* (peak_mb) and flop_ratio_* (gflop), each
_to_lora against the LoRA of the same implementation on the same workload, _to_ft against FT, and
_to_peft_same_method against PEFT's row for the same method (LoRA+ against PEFT LoRA, sparse RandLoRA against
PEFT's dense RandLoRA). Time ratios are medians over the timed rounds of the two cases' ratio within a round: a
round runs every case back to back, so load that drifts between rounds cancels.
Output: <out>/<device>-<date>.csv (one row per case), <out>/<device>-<date>.png, and a printed table.
All cases of a workload live at once: adapter cases share the frozen base weights (no copy), FT has its own.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import datetime as dt
import gc
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the CPU profiler's start/stop banners
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from randlora.adapters import count_parameters, inject, match_rank, param_groups, predict_trainable  # noqa: E402
from randlora.adapters import save_adapter  # noqa: E402

WORKLOADS = ("vit", "clip", "clip_mlp", "llama")
RATIO_COLUMNS = ["ratio_to_lora", "ratio_to_ft", "ratio_to_peft_same_method", "cpu_ratio_to_lora", "cpu_ratio_to_ft",
                 "cpu_ratio_to_peft_same_method", "peak_ratio_to_lora", "peak_ratio_to_peft_same_method",
                 "flop_ratio_to_lora", "flop_ratio_to_ft", "flop_ratio_to_peft_same_method"]
RATIO_OF = {"ratio": "step_ms", "cpu_ratio": "step_cpu_ms", "peak_ratio": "peak_mb", "flop_ratio": "gflop"}
CSV_COLUMNS = ["workload", "method", "impl", "rank", "trainable", "step_ms", "step_ms_min", "step_cpu_ms", "gflop",
               "peak_mb", "file_bytes", *RATIO_COLUMNS, "status", "notes", "device", "dtype", "compiled", "threads",
               "batch", "tokens", "steps"]
LR, WEIGHT_DECAY, LORA_RANK, VERA_RANK, NOLA_BASES, LORAPLUS_RATIO = 1e-4, 0.01, 32, 256, 1024, 16.0


# --- workloads ---------------------------------------------------------------------------------------------
@dataclass
class Workload:
    """A model factory, a batch factory and a loss, plus what to adapt in it."""

    name: str
    build: Callable[[], nn.Module]
    make_batch: Callable[[int, torch.device], dict[str, torch.Tensor]]
    loss: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
    batch: int
    tokens_per_item: int
    ours_targets: Any
    peft_targets: list[str]
    methods: list[str]                       # "impl:method" keys measured on this workload
    peft_unsupported: set[str] = field(default_factory=set)  # PEFT methods expected to refuse the targets
    lora_rank: int = LORA_RANK
    vera_rank: int = VERA_RANK


ALL_METHODS = ["ours:ft", "ours:lora", "ours:loraplus", "ours:vera", "ours:nola", "ours:randlora",
               "ours:randlora_sparse", "peft:lora", "peft:vera", "peft:randlora"]
PAIRED_METHODS = ["ours:lora", "ours:vera", "ours:randlora", "peft:lora", "peft:vera", "peft:randlora"]


def _ranks(tiny: bool) -> dict[str, int]:
    return dict(lora_rank=4, vera_rank=16) if tiny else dict(lora_rank=LORA_RANK, vera_rank=VERA_RANK)


def _vit(tiny: bool, layers: int | None) -> Workload:
    from timm.models.vision_transformer import VisionTransformer

    shape = dict(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2, num_classes=5) if tiny else \
        dict(img_size=224, patch_size=16, embed_dim=768, depth=2, num_heads=12, num_classes=100)
    shape["depth"] = layers or shape["depth"]
    tokens = (shape["img_size"] // shape["patch_size"]) ** 2 + 1

    def make_batch(batch: int, device: torch.device) -> dict[str, torch.Tensor]:
        size = shape["img_size"]
        return {"images": torch.randn(batch, 3, size, size, device=device),
                "labels": torch.randint(0, shape["num_classes"], (batch,), device=device)}

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch["images"]), batch["labels"])

    return Workload("vit", lambda: VisionTransformer(**shape), make_batch, loss, 2 if tiny else 32, tokens,
                    "vit", ["attn.qkv", "mlp.fc1", "mlp.fc2"], ALL_METHODS, **_ranks(tiny))


def _clip(tiny: bool, layers: int | None, mlp_only: bool) -> Workload:
    import open_clip

    if tiny:
        vision = dict(layers=1, width=32, head_width=16, patch_size=16, image_size=32)
        text = dict(context_length=8, vocab_size=100, width=32, heads=2, layers=1)
        embed, classes = 16, 3
    else:
        vision = dict(layers=1, width=768, head_width=64, patch_size=32, image_size=224)
        text = dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=1)
        embed, classes = 512, 32
    vision["layers"] = text["layers"] = layers or vision["layers"]

    def build() -> nn.Module:
        return open_clip.CLIP(embed, vision_cfg=vision, text_cfg=text)

    def make_batch(batch: int, device: torch.device) -> dict[str, torch.Tensor]:
        size = vision["image_size"]
        return {"images": torch.randn(batch, 3, size, size, device=device),
                "prompts": torch.randint(1, text["vocab_size"], (classes, text["context_length"]), device=device),
                "labels": torch.randint(0, classes, (batch,), device=device)}

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Classification by cosine similarity to the class prompts' embeddings (both towers trained)."""
        image, prompts, scale = model(batch["images"], batch["prompts"])[:3]
        return F.cross_entropy(scale * image @ prompts.t(), batch["labels"])

    tokens = (vision["image_size"] // vision["patch_size"]) ** 2 + 1  # image tokens per item (+ the prompts)
    batch = 2 if tiny else 128
    if mlp_only:
        return Workload("clip_mlp", build, make_batch, loss, batch, tokens, "clip_mlp", ["mlp.c_fc", "mlp.c_proj"],
                        PAIRED_METHODS, **_ranks(tiny))
    return Workload("clip", build, make_batch, loss, batch, tokens, "clip_all", ["attn", "mlp.c_fc", "mlp.c_proj"],
                    ALL_METHODS, {"vera", "randlora"}, **_ranks(tiny))


def _llama(tiny: bool, layers: int | None) -> Workload:
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=100) if tiny else \
        dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=2, num_attention_heads=32,
             num_key_value_heads=8, vocab_size=32000)
    shape["num_hidden_layers"] = layers or shape["num_hidden_layers"]
    seq = 8 if tiny else 256

    def build() -> nn.Module:
        config = LlamaConfig(**shape, max_position_embeddings=max(seq, 512), tie_word_embeddings=False)
        config._attn_implementation = "sdpa"
        return LlamaForCausalLM(config)

    def make_batch(batch: int, device: torch.device) -> dict[str, torch.Tensor]:
        ids = torch.randint(0, shape["vocab_size"], (batch, seq), device=device)
        return {"input_ids": ids, "labels": ids}

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(input_ids=batch["input_ids"], labels=batch["labels"], use_cache=False).loss

    return Workload("llama", build, make_batch, loss, 1, seq, "llm",
                    ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"], ALL_METHODS, **_ranks(tiny))


def make_workload(name: str, tiny: bool, layers: int | None = None) -> Workload:
    """A workload by name; `layers` overrides the number of blocks (per tower for CLIP)."""
    if name == "vit":
        return _vit(tiny, layers)
    if name in ("clip", "clip_mlp"):
        return _clip(tiny, layers, mlp_only=name == "clip_mlp")
    if name == "llama":
        return _llama(tiny, layers)
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")


# --- cases -------------------------------------------------------------------------------------------------
@dataclass
class Case:
    impl: str          # ours | peft
    method: str        # ft, lora, loraplus, vera, nola, randlora, randlora_sparse
    rank: int | None
    config: Any        # our adapter config dict, or a PEFT config object
    lr_ratio: float | None = None
    notes: str = ""


def randlora_rank(workload: Workload) -> tuple[int, int]:
    """RandLoRA rank whose trainable count is closest to LoRA's on this workload: (rank, LoRA's count)."""
    with torch.device("meta"):
        model = workload.build()
    lora = predict_trainable(model, dict(name="lora", rank=workload.lora_rank, targets=workload.ours_targets))
    rank, _ = match_rank(model, dict(name="randlora", targets=workload.ours_targets), lora, ranks=range(1, 257))
    return rank, lora


def make_cases(workload: Workload, selected: list[str] | None) -> list[Case]:
    import peft

    r_lora, r_vera = workload.lora_rank, workload.vera_rank
    r_rand, _ = randlora_rank(workload)
    targets = workload.ours_targets
    ours = {
        "ft": Case("ours", "ft", None, dict(name="full")),
        "lora": Case("ours", "lora", r_lora, dict(name="lora", rank=r_lora, targets=targets)),
        "loraplus": Case("ours", "loraplus", r_lora, dict(name="loraplus", rank=r_lora, targets=targets),
                         LORAPLUS_RATIO, f"lr_B = {LORAPLUS_RATIO:g} lr_A"),
        "vera": Case("ours", "vera", r_vera, dict(name="vera", rank=r_vera, targets=targets)),
        "nola": Case("ours", "nola", 1, dict(name="nola", rank=1, num_bases=NOLA_BASES, targets=targets),
                     notes=f"{NOLA_BASES} rank-1 bases"),
        "randlora": Case("ours", "randlora", r_rand, dict(name="randlora", rank=r_rand, targets=targets)),
        "randlora_sparse": Case("ours", "randlora_sparse", r_rand,
                                dict(name="randlora", rank=r_rand, basis="sparse", targets=targets)),
    }
    peft_targets = workload.peft_targets
    theirs = {
        "lora": Case("peft", "lora", r_lora, peft.LoraConfig(r=r_lora, lora_alpha=2 * r_lora,
                                                             target_modules=peft_targets)),
        "vera": Case("peft", "vera", r_vera, peft.VeraConfig(r=r_vera, target_modules=peft_targets,
                                                             projection_prng_key=0, d_initial=0.1)),
        "randlora": Case("peft", "randlora", r_rand, peft.RandLoraConfig(
            r=r_rand, randlora_alpha=20 * r_rand, target_modules=peft_targets, projection_prng_key=0)),
    }
    cases = []
    for key in workload.methods:
        if selected is not None and key not in selected and key.split(":")[1] not in selected:
            continue
        impl, method = key.split(":")
        cases.append((ours if impl == "ours" else theirs)[method])
    return cases


# --- measurement -------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def live_bytes(*objects: Any) -> int:
    """Bytes of the distinct tensor storages reachable from modules, optimizers, tensors and dicts of them."""
    seen: dict[int, int] = {}

    def visit(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
            if obj.grad is not None:
                visit(obj.grad)
        elif isinstance(obj, nn.Module):
            for t in list(obj.parameters()) + list(obj.buffers()):
                visit(t)
        elif isinstance(obj, torch.optim.Optimizer):
            for state in obj.state.values():
                visit(state)
        elif isinstance(obj, dict):
            for value in obj.values():
                visit(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                visit(value)

    for obj in objects:
        visit(obj)
    return sum(seen.values())


def profiled_cpu_peak(step: Callable[[], None], profile_path: Path | None) -> int:
    """Peak of (bytes allocated − bytes freed) by torch on the CPU during one call of `step`."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for event in events:
        running += event.nbytes()
        peak = max(peak, running)
    if profile_path is not None:
        profile_path.parent.mkdir(parents=True, exist_ok=True)
        profile_path.write_text(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40))
    return peak


def adapt(model: nn.Module, case: Case) -> tuple[list, Callable[[Path], int]]:
    """Adapt `model` in place; return the optimizer's parameters and a function saving the adapter (-> bytes)."""
    if case.impl == "ours":
        inject(model, case.config)
        groups = param_groups(model, LR, WEIGHT_DECAY, lr_ratio=case.lr_ratio)

        def save(folder: Path) -> int:
            return save_adapter(model, folder / "adapter.safetensors").stat().st_size

        return groups, save
    import peft

    wrapped = peft.get_peft_model(model, case.config)

    def save_peft(folder: Path) -> int:
        wrapped.save_pretrained(str(folder / "peft"))
        return sum(p.stat().st_size for p in (folder / "peft").rglob("*") if p.is_file())

    return [p for p in model.parameters() if p.requires_grad], save_peft


def shared_copy(base: nn.Module) -> nn.Module:
    """A deep copy of `base` whose parameters and buffers are `base`'s own tensors (frozen, never written).

    Every adapter case of a workload starts from the same frozen weights without holding another copy of them;
    each copy gets its own modules, so injecting adapters into one leaves the others untouched.
    """
    memo = {id(t): t for t in [*base.parameters(), *base.buffers()]}
    return copy.deepcopy(base, memo)


@dataclass
class CaseRun:
    """One case set up for measurement: its model, optimizer, batch and results so far."""

    case: Case
    model: nn.Module
    optimizer: torch.optim.Optimizer
    batch: dict[str, torch.Tensor]
    save: Callable[[Path], int]
    step: Callable[[], None] = None  # type: ignore[assignment]
    eager_step: Callable[[], None] = None  # type: ignore[assignment]  # what FLOPs are counted on
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)
    peak_bytes: int = 0
    flops: int = 0
    paths: dict[str, int] = field(default_factory=dict)


def set_up(workload: Workload, case: Case, base: nn.Module, batch: dict[str, torch.Tensor],
           args: argparse.Namespace) -> CaseRun:
    """Adapt a copy of the base model (FT: a full copy) and warm it up."""
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    model = copy.deepcopy(base) if case.method == "ft" else shared_copy(base)
    params, save = adapt(model, case)
    model.train()
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
    run = CaseRun(case, model, optimizer, batch, save)

    def make_step(module: nn.Module) -> Callable[[], None]:
        def step() -> None:
            with _autocast(device, dtype):
                loss = workload.loss(module, batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    run.step = run.eager_step = make_step(model)
    with record_randlora_paths(model, run.paths):
        run.step()  # the first warm-up step runs eagerly and records which compute path RandLoRA took
    if args.compile:  # compiled after the path-recording hooks are gone; the next warm-up step compiles
        run.step = make_step(torch.compile(model))
        run.step()
    for _ in range(args.warmup - 1):
        run.step()
    _sync(device)
    return run


def count_flops(step: Callable[[], None]) -> int:
    """Floating-point operations of one step's matrix products (forward and backward; 2 per multiply-add), counted
    by torch's FlopCounterMode from the shapes of the aten calls, so the number has no timing noise. Added to its
    table: the in-place GEMM our adapters accumulate with (``addmm_``) and CPU's attention kernels. Elementwise
    work (activations, norms, AdamW) is not counted."""
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    formulas = {aten.addmm_: fc.addmm_flop, aten.baddbmm_: fc.baddbmm_flop,
                aten._scaled_dot_product_flash_attention_for_cpu: fc.sdpa_flop,
                aten._scaled_dot_product_flash_attention_for_cpu_backward: fc.sdpa_backward_flop}
    # the module's formulas are already wrapped to take tensors; custom_mapping wants them on shapes
    extra = {op: getattr(formula, "__wrapped__", formula) for op, formula in formulas.items()}
    counter = fc.FlopCounterMode(display=False, custom_mapping=extra)
    with counter:
        step()
    return counter.get_total_flops()


def measure_peak(run: CaseRun, device: torch.device, profile_path: Path | None) -> int:
    """Bytes held by this case's tensors when a step starts + the most a step allocates on top of them."""
    start = live_bytes(run.model, run.optimizer, run.batch)
    if device.type == "cuda":
        _sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run.step()
        _sync(device)
        return start + torch.cuda.max_memory_allocated(device) - before
    return start + profiled_cpu_peak(run.step, profile_path)


def time_step(run: CaseRun, device: torch.device) -> None:
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    run.step()
    _sync(device)
    run.times.append(time.perf_counter() - t0)
    run.cpu_times.append(time.process_time() - c0)


@contextlib.contextmanager
def record_randlora_paths(model: nn.Module, chosen: dict[str, int]) -> Iterator[None]:
    """Count which compute path each RandLoRA layer takes (`path: auto`) while the context is open."""
    from randlora.adapters.randlora import RandLoRA

    seen: set[int] = set()

    def record(module: RandLoRA, inputs: tuple) -> None:
        if id(module) not in seen:  # count layers, not calls (attention reads its weight more than once)
            seen.add(id(module))
            path = "parametrized" if module.base_layer is None else module.choose_path(inputs[0])
            chosen[path] = chosen.get(path, 0) + 1

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, RandLoRA)]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


# --- reporting ---------------------------------------------------------------------------------------------
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
            row[column] = _ratio(row, references[reference], RATIO_OF[metric])


ROUND_TIMES = {"step_ms": "_round_s", "step_cpu_ms": "_round_cpu_s"}  # per-round times kept out of the CSV


def _ratio(row: dict, reference: dict | None, key: str) -> float | str:
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


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device).lower()
        return "cuda-" + "".join(c if c.isalnum() else "-" for c in name).strip("-")
    return "cpu"


# --- main --------------------------------------------------------------------------------------------------
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


def run(args: argparse.Namespace) -> list[dict]:
    rows: list[dict] = []
    for name in args.workloads:
        rows.extend(run_workload(make_workload(name, args.tiny, args.layers), args))
    add_ratios(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = args.threads or (1 if args.tiny else None)
    if threads:
        torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    rows = run(args)
    stem = f"{device_label(torch.device(args.device))}-{dt.date.today().isoformat()}"
    stem += "-compile" if args.compile else ""
    stem += "-tiny" if args.tiny else ""
    out = Path(args.out)
    write_csv(rows, out / f"{stem}.csv")
    plot(rows, out / f"{stem}.png")
    print()
    print_table(rows)
    print(f"\nwrote {out / (stem + '.csv')} and {out / (stem + '.png')}")
    return 1 if any(r["status"] == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
