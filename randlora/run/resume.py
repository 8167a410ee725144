"""Resume an interrupted training run: ``python train.py ... resume=true|auto`` or ``resume=<path to a .ckpt>``.

Writing. :class:`ResumeCheckpoint` (``callbacks.resume_checkpoint``) writes ``<run>/checkpoints/last.ckpt``
at the end of every training epoch (after that epoch's validation), and ``<run>/checkpoints/config.json``
(the config's fingerprint, see :func:`config_fingerprint`) when training starts. The checkpoint is
Lightning's checkpoint dict (``torch.save``) with

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

Resolving ``resume`` (:func:`plan_resume`):

- ``true``: among the sibling run folders of this run (``results/runs/<task>/<backbone>/<adapter>/*``), the
  one whose ``checkpoints/last.ckpt`` is newest, whose stored config fingerprint equals this config's and
  whose ``result.json`` is not ``ok`` (missing after a kill, ``failed`` after an interrupt or a crash);
- ``auto``: as ``true`` when there is such a run, else a new run (for jobs that a scheduler may requeue or
  that a sweep repeats: the same command line works before and after an interruption);
- a path: that file, which must exist.

Loading. :func:`check_checkpoint` opens the file with ``torch.load(weights_only=True)`` (no code from the
file runs; a truncated file fails to open) and refuses one whose adapter config, base model
(:func:`randlora.adapters.base_signature`) or random bases (:func:`randlora.adapters.basis_checksum`) differ
from the run's, or whose tensors do not fit it. Lightning then loads it again with ``weights_only=True``
(``Trainer.fit(ckpt_path=..., weights_only=True)``, Lightning >= 2.5) and restores the rest.

Where the resumed run lives: in the interrupted run's own folder, when the checkpoint is that folder's
``checkpoints/last.ckpt`` with the same config and no ``ok`` result. Its final ``result.json`` then
replaces the interrupted one, so the run counts once in the aggregate tables (a folder without a result is
listed there as incomplete) and its adapter, metrics.csv and train.log stay together. Hydra has already
made a new folder for this process by then; :func:`continue_in` moves the log file to the old folder and
deletes the new one, which holds nothing but Hydra's ``.hydra/`` and the log; ``metrics.csv`` is continued
(:mod:`randlora.run.loggers`: each step and epoch once). A checkpoint from elsewhere,
or from a run of another config (``resume=<path>`` only: e.g. more epochs), continues in the new folder.
Either way the result records ``resumed_from``.

Limits: the RNG states are rank 0's (Lightning seeds every rank alike); with ``loader.num_workers > 0`` the
data order is restored but not the workers' own RNG streams (random augmentations).
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from randlora.utils.config import flatten_config
from randlora.utils.files import publish

if TYPE_CHECKING:
    from randlora.run.task_wrapper import RunInfo

log = logging.getLogger(__name__)

FORMAT = "randlora-resume/1"
METADATA_KEY = "randlora"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
CONFIG_FILE = "config.json"
IGNORED_KEYS = ("paths", "hydra", "resume")  # not part of a run's identity


# ------------------------------------------------------------------------------------------ config identity


def config_fingerprint(cfg: DictConfig) -> tuple[str, dict]:
    """``("sha256:<hex>", config)``: the composed config without ``paths``, ``hydra`` and ``resume``.

    Interpolations are kept unresolved (``${paths.output_dir}`` differs between runs, its text does not);
    the hash is over the JSON with sorted keys. Take it before anything edits the config (``budget``).
    """
    config = OmegaConf.to_container(cfg, resolve=False)
    for key in IGNORED_KEYS:
        config.pop(key, None)
    text = json.dumps(config, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest(), config


def differing_keys(a: dict, b: dict) -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    flat_a, flat_b = flatten_config(a), flatten_config(b)
    return sorted(k for k in flat_a.keys() | flat_b.keys() if flat_a.get(k, "<absent>") != flat_b.get(k, "<absent>"))


def _stored_config(run_dir: Path) -> dict | None:
    """``{"config_hash", "config"}`` stored in a run folder, or None when absent or unreadable."""
    try:
        stored = json.loads((run_dir / CHECKPOINT_DIR / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) and "config_hash" in stored else None


def _finished(run_dir: Path) -> bool:
    """True when the folder holds a parsable ``result.json`` with ``status: ok``."""
    try:
        return json.loads((run_dir / "result.json").read_text()).get("status") == "ok"
    except (OSError, ValueError, AttributeError):
        return False


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

    ``config_hash`` and ``config`` (from :func:`config_fingerprint`) are set by the training wiring and
    stored in ``<dirpath>/config.json`` when training starts. ``keep_last: false`` lets the wiring delete
    the checkpoint (:meth:`discard`) once the run's ``ok`` result is written.
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


# ------------------------------------------------------------------------------------------- resolving resume


@dataclass
class ResumePlan:
    """The checkpoint to resume from and the run folder to continue in (None: this run's new folder)."""

    checkpoint: Path
    run_dir: Path | None


def _checkpoint_of(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT


def newest_interrupted_run(search_dir: Path, fingerprint: tuple[str, dict], exclude: Path | None = None) -> Path:
    """The newest run folder under ``search_dir`` to resume (see the module docstring); else FileNotFoundError."""
    config_hash, config = fingerprint
    found, other_configs, finished = [], [], 0
    for checkpoint in sorted(search_dir.glob(f"*/{CHECKPOINT_DIR}/{LAST_CHECKPOINT}")):
        run_dir = checkpoint.parent.parent
        if exclude is not None and run_dir.resolve() == exclude.resolve():
            continue
        stored = _stored_config(run_dir)
        if stored is None or stored["config_hash"] != config_hash:
            other_configs.append((checkpoint.stat().st_mtime, stored))
        elif _finished(run_dir):
            finished += 1
        else:
            found.append((checkpoint.stat().st_mtime, run_dir))
    if found:
        return max(found, key=lambda item: item[0])[1]
    hint = ""
    newest_other = max(other_configs, key=lambda item: item[0], default=(0, None))[1]
    if newest_other is not None and isinstance(newest_other.get("config"), dict):
        keys = differing_keys(config, newest_other["config"])[:6]
        hint = f"; the newest other checkpoint's config differs in {', '.join(keys)}"
    raise FileNotFoundError(
        f"resume=true: no interrupted run of this config in {search_dir} (looked for <run>/{CHECKPOINT_DIR}/"
        f"{LAST_CHECKPOINT} with config hash {config_hash[:19]}… and no ok result.json; found "
        f"{len(other_configs)} checkpoint(s) of other configs and {finished} of finished runs{hint}); "
        "start it without resume, or give resume=<path to a .ckpt>")


def plan_resume(cfg: DictConfig, run_dir: Path, fingerprint: tuple[str, dict]) -> ResumePlan | None:
    """Resolve ``cfg.resume`` (null/false: None; true: newest interrupted run; a path: that checkpoint)."""
    value = cfg.get("resume")
    if value is None or value is False:
        return None
    if value == "auto":  # a requeued or repeated job: continue the interrupted run if there is one
        try:
            old_run = newest_interrupted_run(run_dir.parent, fingerprint, exclude=run_dir)
        except FileNotFoundError:
            log.info("resume=auto: no interrupted run of this config in %s; starting afresh", run_dir.parent)
            return None
        return ResumePlan(_checkpoint_of(old_run), old_run)
    if value is True:
        old_run = newest_interrupted_run(run_dir.parent, fingerprint, exclude=run_dir)
        return ResumePlan(_checkpoint_of(old_run), old_run)
    checkpoint = Path(str(value)).expanduser()
    if not checkpoint.is_file():
        raise FileNotFoundError(f"resume={value}: no such checkpoint file; give the path of a run's "
                                f"{CHECKPOINT_DIR}/{LAST_CHECKPOINT}, or resume=true for the newest interrupted run")
    checkpoint = checkpoint.resolve()
    old_run = checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINT_DIR else None
    stored = None if old_run is None else _stored_config(old_run)
    if stored is not None and stored["config_hash"] == fingerprint[0] and not _finished(old_run):
        return ResumePlan(checkpoint, old_run)
    if stored is not None and stored["config_hash"] != fingerprint[0]:
        log.warning("resume=%s: the config differs from that run's (%s); continuing in this run's new folder",
                    value, ", ".join(differing_keys(fingerprint[1], stored.get("config") or {})[:6]))
    return ResumePlan(checkpoint, None)


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


# ------------------------------------------------------------------------------------ continuing in the folder


def _move_log_files(old: Path, new: Path) -> None:
    """Point the root logger's file handlers under ``old`` at the same file names under ``new`` (appending)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if not isinstance(handler, logging.FileHandler) or Path(handler.baseFilename).resolve().parent != old.resolve():
            continue
        handler.flush()
        target = new / Path(handler.baseFilename).name
        written = Path(handler.baseFilename).read_text() if Path(handler.baseFilename).is_file() else ""
        with open(target, "a", encoding=handler.encoding) as stream:
            stream.write(written)
        moved = logging.FileHandler(target, mode="a", encoding=handler.encoding)
        moved.setFormatter(handler.formatter)
        moved.setLevel(handler.level)
        for log_filter in handler.filters:
            moved.addFilter(log_filter)
        root.addHandler(moved)
        root.removeHandler(handler)
        handler.close()


def _remove_if_only_hydra_files(folder: Path) -> None:
    """Delete ``folder`` if it holds nothing but Hydra's ``.hydra/`` and ``*.log`` files."""
    if not folder.is_dir():
        return
    entries = list(folder.iterdir())
    if all(e.name == ".hydra" or (e.is_file() and e.suffix == ".log") for e in entries):
        shutil.rmtree(folder, ignore_errors=True)
    else:
        log.warning("left %s in place: it holds more than Hydra's files (%s)", folder, sorted(e.name for e in entries))


def continue_in(cfg: DictConfig, info: RunInfo, run_dir: Path) -> None:
    """Make ``run_dir`` this run's folder: config paths, the failure record, the log file; drop the new one."""
    new_dir = info.run_dir
    if new_dir.resolve() == run_dir.resolve():
        return
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    info.run_dir = run_dir
    _move_log_files(new_dir, run_dir)
    _remove_if_only_hydra_files(new_dir)
    log.info("continuing the interrupted run in %s", run_dir)
