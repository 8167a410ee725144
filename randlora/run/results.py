"""The per-run ``result.json``: building it, writing it atomically, reading it back.

Schema 1 (see docs/ARCHITECTURE.md)::

    {"schema": 1, "status": "ok" | "failed" | "interrupted", "error": str | null, "run_id", "started",
     "task", "subtask", "backbone", "adapter", "rank", "alpha", "lr", "lr_ratio", "seed", "basis_seed",
     "budget", "debug" (null, or the debug preset such as "fast"),
     "metrics": {"val/acc_best", "val/acc_final", "test/acc", "test/acc/<subtask>", ...},
     "params": {"trainable", "total"}, "peak_memory_mb", "wall_time_s", "samples_per_s",
     "git_commit", "versions": {package: version}, "basis_checksum", "config": {resolved config}}

Accuracies are fractions in [0, 1]; errors (``rel_error``) are ratios, 1 meaning nothing learned. A file is
written to a temporary name in the same folder and renamed into place (``os.replace``), so a kill never leaves a
truncated ``result.json``; readers list a run folder without one as incomplete and an unparsable file as
corrupt, never as a result (see :mod:`randlora.reporting.runs`).
"""
from __future__ import annotations

import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from randlora.utils.files import publish

SCHEMA_VERSION = 1
RESULT_FILE = "result.json"
ADAPTER_FILE = "adapter.safetensors"
VERSIONED_PACKAGES = ("randlora", "torch", "lightning", "transformers", "hydra-core", "omegaconf",
                      "timm", "open_clip_torch", "safetensors", "peft")


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None: strict JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as strict JSON (NaN/Infinity become null: :func:`strict_json`) to ``path`` via a
    temporary file in the same folder and ``os.replace``; the temporary file is removed if anything fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(strict_json(payload), stream, indent=2, default=str, allow_nan=False)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        publish(temporary, path)  # the umask's mode (0644), not mkstemp's private 0600
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


class _RssSampler:
    """Peak resident set size since :meth:`restart`, sampled every ``interval`` seconds from ``/proc/self/statm``.

    The fallback where the kernel ignores a write to ``clear_refs`` (some sandboxes and VM kernels): a
    background thread keeps the largest RSS seen, so a run's peak still excludes earlier jobs' peaks.
    Peaks shorter than the interval can be missed; training runs hold their peak for many steps."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak, self._thread = interval, 0.0, None

    @staticmethod
    def rss_mb() -> float:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20

    def restart(self) -> None:
        self.peak = self.rss_mb()
        if self._thread is None:
            import threading

            self._thread = threading.Thread(target=self._run, name="rss-peak-sampler", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        import time

        while self._thread is not None:
            self.peak = max(self.peak, self.rss_mb())
            time.sleep(self.interval)

    def stop(self) -> None:
        self._thread = None

    def read(self) -> float:
        self.peak = max(self.peak, self.rss_mb())
        return self.peak


_RSS_SAMPLER: _RssSampler | None = None  # started only where the kernel does not honour the clear_refs reset
CLEAR_REFS = Path("/proc/self/clear_refs")


def _vm_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def reset_peak_memory() -> None:
    """Start this run's peak-memory count afresh: a sweep worker (joblib, submitit) runs many jobs in one process,
    and both CUDA's counter and the process's peak RSS would otherwise carry the earlier jobs' peaks.

    On Linux, writing 5 to ``/proc/self/clear_refs`` resets the peak RSS (VmHWM) to the current RSS. Whether it
    did is checked (VmHWM must come down to about VmRSS); where it did not, an RSS sampler takes over."""
    global _RSS_SAMPLER
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()
    if _RSS_SAMPLER is not None:
        _RSS_SAMPLER.restart()
        return
    try:
        CLEAR_REFS.write_text("5")
        if _vm_kib("VmHWM") <= _vm_kib("VmRSS") + 16 * 2**10:  # reset honoured (16 MiB: RSS grows meanwhile)
            return
    except (OSError, AttributeError):
        if not Path("/proc/self/statm").exists():
            return  # not Linux: peak_memory_mb falls back to the process's lifetime peak
    _RSS_SAMPLER = _RssSampler()
    _RSS_SAMPLER.restart()


def peak_memory_mb() -> float:
    """Peak CUDA memory allocated when CUDA was used, else the process's peak RSS since the last
    :func:`reset_peak_memory` (Linux; elsewhere the process's lifetime peak), in MiB."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    if _RSS_SAMPLER is not None:
        return _RSS_SAMPLER.read()
    try:
        return _vm_kib("VmHWM") / 2**10
    except (OSError, AttributeError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def git_commit(directory: str | Path | None = None) -> str | None:
    """The HEAD commit of the repository holding this package, or None outside a git checkout."""
    directory = directory or Path(__file__).resolve().parent
    try:
        completed = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True,
                                   text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a result (those not installed are left out)."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _select(cfg: DictConfig, key: str) -> Any:
    try:
        value = OmegaConf.select(cfg, key, default=None)
    except Exception:  # a broken interpolation must not stop a failed result from being written
        return None
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _resolved_config(cfg: DictConfig) -> dict:
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:
        config = OmegaConf.to_container(cfg, resolve=False)
    config.pop("hydra", None)
    return config


def _backbone_name(cfg: DictConfig) -> str | None:
    """The backbone's config name (``minilm``): Hydra's choice, else the catalog entry equal to the config,
    else the model name (``backbone.name``)."""
    from randlora.backbones import BACKBONES
    from randlora.utils.config import choice

    backbone = _select(cfg, "backbone")
    catalog = [name for name, spec in BACKBONES.items() if spec == backbone]
    return choice(cfg, "backbone") or (catalog[0] if catalog else _select(cfg, "backbone.name"))


def build_result(
    cfg: DictConfig,
    *,
    run_id: str,
    started: datetime,
    status: str = "ok",
    error: str | None = None,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, int] | None = None,
    wall_time_s: float | None = None,
    samples_per_s: float | None = None,
    basis_checksum: str | None = None,
) -> dict:
    """The result dict for one run; run facts (names, rank, lr, seeds) are read from the composed config."""
    return {
        "schema": SCHEMA_VERSION,
        "status": status,
        "error": error,
        "run_id": run_id,
        "started": started.isoformat(timespec="seconds"),
        "task": _select(cfg, "task.name"),
        "subtask": _select(cfg, "task.subtask"),
        "backbone": _backbone_name(cfg),
        "adapter": _select(cfg, "adapter.name"),
        "rank": _select(cfg, "adapter.rank"),
        "alpha": _select(cfg, "adapter.alpha"),
        "lr": _select(cfg, "optim.lr"),
        "lr_ratio": _select(cfg, "adapter.lr_ratio"),  # LoRA+'s ratio has one home: the adapter
        "seed": _select(cfg, "seed"),
        "basis_seed": _select(cfg, "adapter.basis_seed"),
        "budget": _select(cfg, "budget"),
        "debug": _select(cfg, "debug_preset"),  # a smoke run: aggregation leaves it out unless asked
        "metrics": {key: float(value) for key, value in (metrics or {}).items()},
        "params": dict(params or {}),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "wall_time_s": None if wall_time_s is None else round(wall_time_s, 2),
        "samples_per_s": None if samples_per_s is None else round(samples_per_s, 2),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "basis_checksum": basis_checksum,
        "config": _resolved_config(cfg),
    }


def read_finished_result(run_dir: str | Path) -> dict:
    """The `result.json` of a finished run (status ok, with its config), for the tools that rebuild a run
    (analyses, export), or one line saying what is wrong with the folder."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {RESULT_FILE} (give the folder of a run written by train.py)")
    try:
        result = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); was the run killed while writing?") from None
    if not isinstance(result, dict) or result.get("status") != "ok" or not isinstance(result.get("config"), dict):
        status = result.get("status") if isinstance(result, dict) else None
        raise ValueError(f"{path} is not the result of a finished run (status ok with its config); "
                         f"its status is {status!r}")
    return result


def write_result(run_dir: str | Path, result: Mapping[str, Any]) -> Path:
    """Write ``result`` to ``<run_dir>/result.json`` atomically and return the path."""
    return write_json_atomic(Path(run_dir) / RESULT_FILE, dict(result))



GENERATIONS_DIR = "generations"


def write_generations(run_dir: str | Path, generations: Mapping[str, list], rank: int = 0,
                      world_size: int = 1) -> list[Path]:
    """One ``<run_dir>/generations/<test set>.json`` per test set: every generation with its extracted and gold
    answer (LLM-Adapters keeps the same per task), so a reader can see why a score is what it is. With several
    processes each writes its own share as ``<test set>.rank<k>.json``."""
    suffix = "" if world_size == 1 else f".rank{rank}"
    return [write_json_atomic(Path(run_dir) / GENERATIONS_DIR / f"{name}{suffix}.json", records)
            for name, records in generations.items() if records]
