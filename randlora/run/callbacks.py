"""Lightning callbacks of this project."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning.pytorch as pl
import torch

from randlora.utils.files import publish

log = logging.getLogger(__name__)


class AdapterCheckpoint(pl.Callback):
    """Keep the adapter (trainable tensors only) of the best validation epoch in ``dirpath/filename``.

    After each validation (not the sanity check) the monitored metric is compared with the best so far
    (``mode`` max or min; both None until the training wiring sets them to the module's validation metric,
    ``val/acc`` / max or ``val/rel_error`` / min); on improvement the adapter is saved atomically with
    :func:`randlora.adapters.save_adapter`. ``best_score`` and ``best_path`` say what was kept;
    :meth:`restore_best` loads it back into the model, e.g. before testing. Its state (best score, path
    and file) is saved in resume checkpoints, so a resumed run keeps the same best adapter.
    """

    def __init__(self, dirpath: str, filename: str = "adapter.safetensors", monitor: str | None = None,
                 mode: str | None = None) -> None:
        if mode not in ("max", "min", None):
            raise ValueError(f"callbacks.adapter_checkpoint.mode={mode!r} is invalid: allowed is max or min")
        self.path = Path(dirpath) / filename
        self.monitor = monitor
        self.mode = mode
        self.best_score: float | None = None
        self.best_path: Path | None = None
        self._pending_file: torch.Tensor | None = None

    def _improved(self, score: float) -> bool:
        if math.isnan(score):
            return False
        if self.best_score is None:
            return True
        return score > self.best_score if self.mode == "max" else score < self.best_score

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor is None or self.monitor not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[self.monitor])
        if not self._improved(score):
            return
        self.best_score = score
        if trainer.is_global_zero:
            from randlora.adapters import save_adapter

            save_adapter(pl_module.model, self.path)
        trainer.strategy.barrier("adapter_checkpoint")
        self.best_path = self.path
        if trainer.is_global_zero:
            log.info("%s improved to %.4f: adapter saved to %s", self.monitor, score, self.path)

    def restore_best(self, pl_module: pl.LightningModule) -> bool:
        """Load the best adapter into ``pl_module.model``; False when none was saved."""
        if self.best_path is None:
            return False
        from randlora.adapters import load_adapter

        load_adapter(pl_module.model, self.best_path)
        return True

    def state_dict(self) -> dict:
        """Best score, best path and the best adapter file's bytes (a uint8 tensor), for resuming."""
        state: dict = {"best_score": self.best_score,
                       "best_path": None if self.best_path is None else str(self.best_path)}
        if self.best_path is not None and self.best_path.is_file():
            state["best_file"] = torch.frombuffer(bytearray(self.best_path.read_bytes()), dtype=torch.uint8)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Take back :meth:`state_dict`; the best file is rewritten when training starts (rank 0).

        The adapter file on disk may be newer than the checkpoint (an epoch that improved, then the
        kill): the resumed run must compare against, and finally test, the adapter the checkpoint knew.
        The file goes to this callback's own ``path``, which is a new folder's when a run is resumed there.
        """
        self.best_score = state_dict.get("best_score")
        self._pending_file = state_dict.get("best_file")
        self.best_path = self.path if state_dict.get("best_path") and self._pending_file is not None else None

    def _write_restored_file(self, trainer: pl.Trainer) -> None:
        pending, self._pending_file = self._pending_file, None
        if pending is not None and self.best_path is not None and trainer.is_global_zero:
            self.best_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.best_path.with_name(f".{self.best_path.name}.restore.tmp")
            temporary.write_bytes(pending.numpy().tobytes())
            publish(temporary, self.best_path)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write_restored_file(trainer)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write_restored_file(trainer)  # strategies that restore after on_fit_start (DeepSpeed)


class MetricHistory(pl.Callback):
    """Record ``monitor`` after every validation (not the sanity check); ``best`` by ``mode`` (max or min).

    The history is saved in resume checkpoints (``state_dict``), so a resumed run reports the same
    best and final values as an uninterrupted one.
    """

    def __init__(self, monitor: str = "val/acc", mode: str = "max") -> None:
        self.monitor = monitor
        self.mode = mode
        self.values: list[float] = []

    @property
    def best(self) -> float | None:
        if not self.values:
            return None
        return max(self.values) if self.mode == "max" else min(self.values)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and self.monitor in trainer.callback_metrics:
            self.values.append(float(trainer.callback_metrics[self.monitor]))

    def state_dict(self) -> dict:
        return {"values": list(self.values)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.values = list(state_dict.get("values", []))
