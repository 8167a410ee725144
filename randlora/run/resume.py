"""Resume an interrupted training run: the checkpoint file, written every epoch and checked before it is loaded.

``python train.py ... resume=true|auto`` or ``resume=<path to a .ckpt>``; which checkpoint a run resumes from
and in which folder it continues is :mod:`randlora.run.resume_plan`.

Writing. :class:`ResumeCheckpoint` (``callbacks.resume_checkpoint``) writes ``<run>/checkpoints/last.ckpt``
at the end of every training epoch (after that epoch's validation), and ``<run>/checkpoints/config.json`` (the
config's fingerprint, :func:`randlora.run.resume_plan.config_fingerprint`) when training starts. The checkpoint
is Lightning's checkpoint dict (``torch.save``) with

- ``state_dict``: the entries that training changes, i.e. trainable parameters and buffers. Frozen base
  weights are left out: a resumed run rebuilds them from its config, and ``randlora`` (below) proves they
  are the same ones;
- ``optimizer_states``, ``lr_schedulers``, ``loops`` (epoch and step progress) from Lightning;
- ``callbacks``: the best validation score and the best adapter file (``AdapterCheckpoint``), the
  validation history (``MetricHistory``), and the RNG states of torch, CUDA, numpy and ``random`` at the
  end of the epoch (this class; put back when the next epoch starts);
- ``randlora``: ``{"format", "config_hash", "adapter_config", "base_signature", "basis_checksum", "progress"}``;
  ``progress`` is the whole run's ``wall_time_s``, ``fit_time_s`` and ``samples`` up to this checkpoint, so a
  resumed run's result reports wall time and samples/s over all its processes (the work an interrupted process
  did after its last checkpoint is redone, and counted once).

The file is written to ``checkpoints/.last.ckpt.tmp``, flushed to disk and renamed over ``last.ckpt``
(``os.replace``), so a kill leaves the previous complete checkpoint or the new one, never a truncated
file. ``ModelCheckpoint`` is not used: Lightning saves through an fsspec transaction whose temporary file
lives in the system temp folder and is moved into place with ``shutil.move``, a plain copy (not atomic)
when that folder is on another file system; and it needs ``trainer.enable_checkpointing=true``, which
makes Lightning add a full-model checkpoint of its own when the callback is switched off.

Data order. The training samplers draw epoch k's order from (seed, k) (:mod:`randlora.utils.sampling`);
Lightning passes k through ``set_epoch``, so the resumed epochs see the same batches.

Loading. :func:`check_checkpoint` opens the file with ``torch.load(weights_only=True)`` (no code from the
file runs; a truncated file fails to open) and refuses one whose adapter config, base model
(:func:`randlora.adapters.base_signature`) or random bases (:func:`randlora.adapters.basis_checksum`) differ
from the run's, or whose tensors do not fit it. Lightning then loads it again with ``weights_only=True``
(``Trainer.fit(ckpt_path=..., weights_only=True)``, Lightning >= 2.5) and restores the rest.

Limits: the RNG states are rank 0's (Lightning seeds every rank alike); with ``loader.num_workers > 0`` the
data order is restored but not the workers' own RNG streams (random augmentations).
"""
from __future__ import annotations

import errno
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from randlora.utils.files import publish

FORMAT = "randlora-resume/1"
METADATA_KEY = "randlora"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
CONFIG_FILE = "config.json"


# ------------------------------------------------------------------------------------------- model identity


def frozen_parameter_names(module: torch.nn.Module) -> set[str]:
    """State-dict names of the frozen parameters (shared ones under every name)."""
    return {n for n, p in module.named_parameters(remove_duplicate=False) if not p.requires_grad}


def model_identity(model: torch.nn.Module) -> dict[str, Any]:
    """What a checkpoint must agree on with the model: adapter config, base signature, basis checksum."""
    from randlora.adapters import base_signature, basis_checksum
    from randlora.adapters.inject import CONFIG_ATTR

    config = getattr(model, CONFIG_ATTR, None)
    return {"adapter_config": None if config is None else config.to_dict(),
            "base_signature": base_signature(model), "basis_checksum": basis_checksum(model)}


# ------------------------------------------------------------------------------------------------ RNG states


def collect_rng_states() -> dict[str, Any]:
    """torch (CPU and, when used, CUDA), numpy and ``random`` states, as types ``weights_only`` can load."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "python": random.getstate(),
              "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                        "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch.cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back what :func:`collect_rng_states` returned."""
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = states["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    if "torch.cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch.cuda"])


# ------------------------------------------------------------------------------------------------- callback


def write_error(error: BaseException, path: Path) -> BaseException:
    """An OSError naming ``path`` for a failed checkpoint write (ENOSPC when the disk is full), else ``error``."""
    text = str(error).lower()
    full = (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "no space left" in text
    if full or (isinstance(error, RuntimeError) and "write failed" in text):
        free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
        if full or free < 2**20:
            return OSError(errno.ENOSPC, "No space left on device", str(path.parent))
        return OSError(errno.EIO, f"could not write the resume checkpoint ({str(error).splitlines()[0]})",
                       str(path))
    return error


class ResumeCheckpoint(pl.Callback):
    """Write ``<dirpath>/last.ckpt`` atomically after every training epoch (format: module docstring).

    ``config_hash`` and ``config`` (from :func:`~randlora.run.resume_plan.config_fingerprint`) are set by the
    training wiring and stored in ``<dirpath>/config.json`` when training starts. ``keep_last: false`` lets the
    wiring delete the checkpoint (:meth:`discard`) once the run's ``ok`` result is written.
    """

    def __init__(self, dirpath: str, keep_last: bool = False) -> None:
        self.dirpath = Path(dirpath)
        self.keep_last = keep_last
        self.config_hash: str | None = None
        self.config: dict | None = None
        self._identity: dict[str, Any] | None = None
        self._saving = False
        self._pending_rng: dict[str, Any] | None = None
        self._run_clock: Any = None
        self._earlier: dict[str, float] = {}
        self._fit_start = time.perf_counter()

    def track_progress(self, run_clock: Any, earlier: dict[str, float]) -> None:
        """Record wall time (``run_clock()``: this process's seconds), fit time and samples in each checkpoint,
        on top of ``earlier`` (what the interrupted processes of a resumed run had done, from its checkpoint)."""
        self._run_clock, self._earlier = run_clock, dict(earlier)

    def _progress(self, pl_module: pl.LightningModule) -> dict[str, float]:
        """The whole run's wall time, fit time and samples trained on, up to now (this checkpoint)."""
        samples = getattr(pl_module, "samples_seen", 0) * pl_module.trainer.world_size
        return {"wall_time_s": self._earlier.get("wall_time_s", 0) + (self._run_clock() if self._run_clock else 0),
                "fit_time_s": self._earlier.get("fit_time_s", 0) + time.perf_counter() - self._fit_start,
                "samples": self._earlier.get("samples", 0) + samples}

    @property
    def path(self) -> Path:
        return self.dirpath / LAST_CHECKPOINT

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.perf_counter()
        self._identity = model_identity(pl_module.model)
        if trainer.is_global_zero and self.config_hash is not None:
            from randlora.run.results import write_json_atomic

            write_json_atomic(self.dirpath / CONFIG_FILE, {"config_hash": self.config_hash, "config": self.config})

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending_rng is not None:  # the first epoch after a resume: the RNGs as the last one ended
            set_rng_states(self._pending_rng)
            self._pending_rng = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for logger in trainer.loggers:  # the rows up to this checkpoint reach the disk before it does
            logger.save()
        self.dirpath.mkdir(parents=True, exist_ok=True)
        temporary = self.dirpath / f".{LAST_CHECKPOINT}.tmp"
        self._saving = True
        try:
            trainer.save_checkpoint(temporary, weights_only=False)  # full state; all ranks take part, rank 0 writes
            if trainer.is_global_zero:
                with open(temporary, "rb") as stream:
                    os.fsync(stream.fileno())
                publish(temporary, self.path)
        except (OSError, RuntimeError) as error:  # torch reports a full disk as "file write failed" (RuntimeError)
            temporary.unlink(missing_ok=True)
            raise write_error(error, temporary) from None
        finally:
            self._saving = False
        trainer.strategy.barrier("resume_checkpoint")

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if not self._saving:  # someone else's trainer.save_checkpoint: leave it as Lightning made it
            return
        frozen = frozen_parameter_names(pl_module)
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}
        identity = self._identity if self._identity is not None else model_identity(pl_module.model)
        checkpoint[METADATA_KEY] = {"format": FORMAT, "config_hash": self.config_hash, **identity,
                                    "progress": self._progress(pl_module)}

    def state_dict(self) -> dict:
        return {"rng": collect_rng_states()}

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending_rng = state_dict.get("rng")

    def discard(self) -> None:
        """Unless ``keep_last``: delete the checkpoint folder's files and the run's SLURM-requeue checkpoints
        (Lightning's ``hpc_ckpt_*.ckpt``), once the run has an ok result."""
        if self.keep_last:
            return
        for name in (LAST_CHECKPOINT, CONFIG_FILE, f".{LAST_CHECKPOINT}.tmp"):
            (self.dirpath / name).unlink(missing_ok=True)
        for hpc in self.dirpath.parent.glob("hpc_ckpt_*.ckpt"):  # Lightning's SLURM requeue saves (full model)
            hpc.unlink(missing_ok=True)
        if self.dirpath.is_dir() and not any(self.dirpath.iterdir()):
            self.dirpath.rmdir()


# ----------------------------------------------------------------------------------------- checking the file


def read_checkpoint(path: Path) -> dict:
    """The checkpoint at ``path``, loaded with ``weights_only=True``; a clear ValueError if it is unusable."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    except Exception as error:  # a truncated zip, a pickle that needs code, not a torch file at all
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise ValueError(f"checkpoint {path} cannot be loaded as plain tensors and values ({reason}); it may be "
                         "truncated, or not a training checkpoint of this project") from None
    metadata = checkpoint.get(METADATA_KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} was not written by randlora's train.py (no {FORMAT!r} metadata): "
                         f"resume needs a {CHECKPOINT_DIR}/{LAST_CHECKPOINT} of a run")
    return checkpoint


def check_checkpoint(path: Path, module: pl.LightningModule) -> dict:
    """Refuse a checkpoint of another adapter, base model or bases, or whose tensors do not fit ``module``."""
    checkpoint = read_checkpoint(path)
    stored, current = checkpoint[METADATA_KEY], model_identity(module.model)
    if stored.get("adapter_config") != current["adapter_config"]:
        saved, ours = stored.get("adapter_config") or {}, current["adapter_config"] or {}
        diff = {k: (saved.get(k), ours.get(k)) for k in sorted(saved.keys() | ours.keys())
                if saved.get(k) != ours.get(k)}
        raise ValueError(f"checkpoint {path} holds a different adapter than the config's: (checkpoint, config) = "
                         f"{diff}; resume with the adapter settings it was trained with")
    if stored.get("base_signature") != current["base_signature"]:
        raise ValueError(f"checkpoint {path} was trained on another base model (parameter names/shapes differ: "
                         f"checkpoint {str(stored.get('base_signature'))[:19]}…, "
                         f"model {current['base_signature'][:19]}…)")
    if stored.get("basis_checksum") != current["basis_checksum"]:
        raise ValueError(f"checkpoint {path}: the random bases regenerated from adapter.basis_seed have checksum "
                         f"{current['basis_checksum']}, the checkpoint was trained with "
                         f"{stored.get('basis_checksum')}; refusing to resume with other bases")
    frozen = frozen_parameter_names(module)
    expected = {k: v.shape for k, v in module.state_dict().items() if k not in frozen}
    tensors = checkpoint.get("state_dict") or {}
    missing, unexpected = sorted(expected.keys() - tensors.keys()), sorted(tensors.keys() - expected.keys())
    wrong = [k for k in expected.keys() & tensors.keys() if tuple(tensors[k].shape) != tuple(expected[k])]
    if missing or unexpected or wrong:
        raise ValueError(f"checkpoint {path} does not fit the model: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}, other shapes {sorted(wrong)[:5]}")
    return checkpoint
