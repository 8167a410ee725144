"""Measuring one case: set it up on the shared frozen base, then time a step, its peak memory and its FLOPs.

A step is forward + loss + backward + AdamW step + zero_grad (`set_up` builds it, runs the warm-up steps and records
which compute path each RandLoRA layer took). Per case:
    step_ms      wall time of a step (`time_step`; CUDA synchronised before and after the step).
    step_cpu_ms  CPU time of this process per step (all threads).
    gflop        floating-point operations of one step's matrix products (forward + backward, 2 per multiply-add),
                 counted by torch's FlopCounterMode from operand shapes (`count_flops`): free of timing noise, so the
                 structural cost of each method can be compared even on a busy machine. Elementwise work and AdamW
                 are not counted.
    peak_mb      peak memory held by this case's tensors during a step (`measure_peak`): the bytes live when a step
                 starts (distinct storages of parameters, buffers, gradients, optimizer state and the batch:
                 `live_bytes`) plus the most the step allocates on top of them. CUDA: max_memory_allocated −
                 memory_allocated around the step. CPU: the peak of the running sum of allocations minus frees that
                 torch.profiler (profile_memory=True) records during one extra, untimed step (`profiled_cpu_peak`).
                 Both count what the allocator hands out, not what the process keeps in free lists, and the same way
                 on both devices.
    file_bytes   size of the saved adapter (ours: `save_adapter`, one safetensors file; PEFT: `save_pretrained` with
                 its defaults, VeRA/RandLoRA projections included).
Adapter cases share the frozen base weights (`shared_copy`, no copy of the tensors); FT gets its own deep copy.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from randlora.adapters import inject, param_groups, save_adapter

from .workloads import Case, Workload

LR, WEIGHT_DECAY = 1e-4, 0.01


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



def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device).lower()
        return "cuda-" + "".join(c if c.isalnum() else "-" for c in name).strip("-")
    return "cpu"
