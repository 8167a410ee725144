"""Record every run, including the ones that crash.

:func:`task_wrapper` wraps a ``task(cfg) -> dict`` function: it fixes the run's id and start time, and if
the task raises (or is interrupted) it writes ``result.json`` with ``status: failed`` and the error
before re-raising, so a sweep's failures show up as failed results, never as missing or as ok.

The error is printed once. In a single run (``python train.py``, or a call outside a Hydra app) whoever
catches it reports it: the command line's one clear line (:mod:`randlora.utils.cli_errors`) or Hydra's
traceback, so the wrapper only says where the failure was recorded (INFO). In a ``-m`` sweep the wrapper
logs the error line itself: Hydra shows the traceback of the first failed job only, at the sweep's end.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

log = logging.getLogger(__name__)


@dataclass
class RunInfo:
    """Where a run writes (``run_dir``), its id (the folder name) and when it started."""

    run_dir: Path
    started: datetime = field(default_factory=lambda: datetime.now().astimezone())
    start_time: float = field(default_factory=time.perf_counter)

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def elapsed(self) -> float:
        return time.perf_counter() - self.start_time


def describe_error(error: BaseException) -> str:
    """``Type: message`` of an exception, for result files and summaries."""
    message = str(error).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def task_wrapper(task: Callable[..., dict]) -> Callable[..., dict]:
    """Give ``task`` a :class:`RunInfo`; on any exception write a failed result, then re-raise. Keyword
    arguments pass through: ``wrapped(cfg, **kwargs)`` calls ``task(cfg, info, **kwargs)``."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig, **kwargs) -> dict:
        from randlora.run.results import build_result, write_result

        from randlora.utils.cli_errors import in_single_run

        run = RunInfo(run_dir=Path(str(cfg.paths.output_dir)))  # the task may move it (a resumed run)
        try:
            return task(cfg, run, **kwargs)
        except BaseException as error:
            try:
                result = build_result(cfg, run_id=run.run_id, started=run.started, status="failed",
                                      error=describe_error(error), wall_time_s=run.elapsed())
                path = write_result(run.run_dir, result)
                if in_single_run():
                    log.info("Failed run recorded in %s", path)
                else:
                    log.error("Run failed (%s); recorded in %s", describe_error(error), path)
            except Exception as write_error:  # never hide the original error
                log.error("Run failed and its result could not be written: %s", describe_error(write_error))
            raise

    return wrapped
