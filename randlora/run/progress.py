"""Progress of a run: a live bar on a terminal, a line every N steps or seconds in a log (SLURM, nohup).

``configs/callbacks/default.yaml`` builds the progress bar with :func:`progress_bar`: Lightning's rich bar when
standard output is a terminal, else :class:`LineProgress`. A log file gets nothing from a live bar until an
epoch ends; :class:`LineProgress` writes one line (to the run's log as well) every ``every_n_steps`` optimizer
steps or ``every_s`` seconds, whichever comes first, with the run's estimated time to the end of training:

    epoch 2/10  step 37/400 (9%)  train/loss 0.4123  2.1 steps/s  elapsed 0:00:18  ETA 0:02:53
"""
from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress import ProgressBar

log = logging.getLogger(__name__)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class LineProgress(ProgressBar):
    """One progress line every ``every_n_steps`` steps or ``every_s`` seconds, and one per validation."""

    def __init__(self, every_n_steps: int = 50, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_n_steps, self.every_s = int(every_n_steps), float(every_s)
        self._enabled = True
        self._start = self._last_time = 0.0
        self._first_step = self._last_step = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last_time = time.perf_counter()
        self._first_step = self._last_step = trainer.global_step

    def line(self, trainer: pl.Trainer, now: float) -> str:
        """The progress line at time ``now`` (``time.perf_counter()``)."""
        step, total = trainer.global_step, trainer.estimated_stepping_batches
        done = step - self._first_step
        elapsed = now - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        if total not in (None, float("inf")) and total > 0:
            parts.append(f"step {step}/{int(total)} ({100 * step / total:.0f}%)")
            eta = (total - step) / rate if rate > 0 else None
        else:
            parts.append(f"step {step}")
            eta = None
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            parts.append(f"train/loss {float(loss):.4f}")
        speed = f"{rate:.1f} steps/s" if rate >= 1 or rate == 0 else f"{1 / rate:.1f} s/step"
        parts += [speed, f"elapsed {_clock(elapsed)}"]
        parts.append(f"ETA {_clock(eta)}" if eta is not None else "ETA n/a")
        return "  ".join(parts)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = time.perf_counter()
        due = trainer.global_step - self._last_step >= self.every_n_steps or now - self._last_time >= self.every_s
        if self._enabled and trainer.is_global_zero and due and trainer.global_step > self._last_step:
            self._last_step, self._last_time = trainer.global_step, now
            log.info(self.line(trainer, now))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._enabled or trainer.sanity_checking or not trainer.is_global_zero:
            return
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        shown = "  ".join(f"{k} {v:.4f}" for k, v in sorted(values.items()))
        log.info(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} validated: {shown}")


def progress_bar(every_n_steps: int = 50, every_s: float = 60.0, leave: bool = True) -> ProgressBar:
    """Lightning's rich bar (per-epoch time left) on a terminal, else :class:`LineProgress` (whole-run ETA)."""
    if sys.stdout.isatty():
        return RichProgressBar(leave=leave)
    return LineProgress(every_n_steps, every_s)
