"""A CSV logger whose ``metrics.csv`` survives ``resume=true``.

Lightning's :class:`~lightning.pytorch.loggers.CSVLogger` deletes an existing ``metrics.csv`` when it starts
("previous log files ... will be deleted"), so a resumed run lost every row logged before the interruption.
:class:`ResumableCSVLogger` keeps them. A resumed run continues from the checkpoint written at the end of an
epoch, so it logs epochs from the next one on: at its first write the file keeps the rows of earlier epochs
and drops the rows of the epoch the interruption cut short (written after that checkpoint), which are logged
again. Every step and epoch then appears exactly once. :class:`randlora.run.resume.ResumeCheckpoint` flushes
the loggers before each checkpoint, so the rows up to a checkpoint are on disk before it is.
"""
from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


def _number(row: dict, key: str) -> float | None:
    try:
        return float(row.get(key))
    except (TypeError, ValueError):
        return None


class KeepingExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued, not deleted."""

    def __init__(self, log_dir: str) -> None:
        self._continuing = os.path.isfile(os.path.join(log_dir, self.NAME_METRICS_FILE))
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes metrics.csv here
        pass

    def save(self) -> None:
        if self._continuing and self.metrics:
            self._continuing = False
            self._keep_rows_before(self._first("epoch"), self._first("step"))
        super().save()

    def _first(self, key: str) -> float:
        return min((v for v in (_number(row, key) for row in self.metrics) if v is not None), default=float("inf"))

    def _keep_rows_before(self, first_new_epoch: float, first_new_step: float) -> None:
        """Rewrite the file with its rows from before the resumed part: epochs before ``first_new_epoch``; rows
        without an epoch (the learning-rate monitor's) by their step, before ``first_new_step``."""
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            header, rows = list(reader.fieldnames or []), list(reader)

        def earlier(row: dict) -> bool:
            epoch, step = _number(row, "epoch"), _number(row, "step")
            if epoch is not None:
                return epoch < first_new_epoch
            return step is None or step < first_new_step

        kept = [row for row in rows if earlier(row)]
        self.metrics_keys = sorted(set(header) | set(self.metrics_keys))
        with self._fs.open(self.metrics_file_path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(kept)


class ResumableCSVLogger(CSVLogger):
    """:class:`~lightning.pytorch.loggers.CSVLogger` with :class:`KeepingExperimentWriter` (see the module doc)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = KeepingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
