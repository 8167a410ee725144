"""Fixtures for the resume and determinism tests: the small synthetic run, as a config or a command line, and
a callback that interrupts training in-process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import lightning.pytorch as pl
import pytest
import torch

from randlora.utils.config import REPO_ROOT

# RandLoRA on the synthetic full-rank task, small: 4 training batches per epoch, ~0.1 s an epoch on a busy CPU.
SYNTHETIC = ("backbone=synthetic_mlp", "task=synthetic_fullrank", "adapter=randlora", "loader.batch_size=128",
             "loader.eval_batch_size=256", "task.train_size=512", "task.val_size=256", "task.test_size=256",
             "trainer.accelerator=cpu", "callbacks.progress_bar=null")
# In-process runs start from debug=fast (2 batches per split): lift its limits.
NO_LIMITS = ("trainer.limit_train_batches=null", "trainer.limit_val_batches=null", "trainer.limit_test_batches=null")
COMPARED_METRICS = ("val/rel_error_best", "val/rel_error_final", "test/rel_error")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: one thread is faster (and steadier on a busy machine) than two. Autouse where imported."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class InterruptedTraining(RuntimeError):
    """Raised by :class:`StopAtEpoch` to stand for a crash or pre-emption."""


class StopAtEpoch(pl.Callback):
    """Raise :class:`InterruptedTraining` when epoch ``epoch`` starts (after the previous epoch's checkpoint)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise InterruptedTraining(f"stopped at the start of epoch {self.epoch}")


def cli_env() -> dict[str, str]:
    """The environment of a ``python train.py`` subprocess: one thread (steady on a busy machine), short errors."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def train_command(root: Path, overrides: Sequence[str]) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "train.py"), *overrides, f"paths.root_dir={root}"]


def start_training(root: Path, overrides: Sequence[str], env: dict[str, str] | None = None,
                   log: str = "stdout.txt") -> subprocess.Popen:
    """``python train.py`` with results under ``root``; output to ``root/<log>``."""
    root.mkdir(parents=True, exist_ok=True)
    stream = open(root / log, "w")  # noqa: SIM115 -- closed by the child's exit; the test reads it later
    return subprocess.Popen(train_command(root, overrides), stdout=stream, stderr=subprocess.STDOUT, cwd=root,
                            env=env or cli_env())


def run_folders(root: Path) -> list[Path]:
    """The run folders under ``root/results/runs/<task>/<backbone>/<adapter>/``."""
    return sorted(p for p in (root / "results" / "runs").glob("*/*/*/*") if p.is_dir())


def read_results(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "results" / "runs").rglob("result.json"))]
