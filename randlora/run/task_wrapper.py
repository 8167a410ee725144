"""Record every run, including the ones that crash.

:func:`task_wrapper` wraps a ``task(cfg) -> dict`` function: it fixes the run's id and start time, and if
the task raises it writes ``result.json`` with ``status: failed`` and the error before re-raising, so a
sweep's failures show up as failed results, never as missing or as ok. A run stopped by a signal (SIGTERM,
which Lightning turns into ``SIGTERMException``; Ctrl-C) is recorded as ``status: interrupted`` instead: it
can be continued with ``resume=true``. Either way any temporary file the run was writing (``.*.tmp``: an
adapter, a checkpoint, a result) is removed; its adapter file, if one was saved, stays beside the non-ok
result, which ``eval.py`` refuses to evaluate.

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
    if is_interruption(error) and (not message or message.isdigit()):  # SIGTERMException(), Lightning's exit(1)
        signal_name = "SIGTERM" if type(error).__name__ == "SIGTERMException" else "Ctrl-C or an exit request"
        message = f"stopped by {signal_name}; continue it with resume=true"
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


INTERRUPTED, FAILED = "interrupted", "failed"


def is_interruption(error: BaseException) -> bool:
    """A signal stopped the run (SIGTERM, Ctrl-C), as opposed to an error in it."""
    return isinstance(error, (KeyboardInterrupt, SystemExit))


def remove_partial_files(run_dir: Path) -> list[Path]:
    """Delete the ``.*.tmp`` files a failed run was writing (in its folder and ``checkpoints/``); return them."""
    removed = []
    for path in [*run_dir.glob(".*.tmp"), *run_dir.glob("checkpoints/.*.tmp")]:
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("could not remove %s: %s", path, describe_error(error))
    return removed


def task_wrapper(task: Callable[..., dict]) -> Callable[..., dict]:
    """Give ``task`` a :class:`RunInfo`; on any exception write a failed (or interrupted) result, then re-raise.
    Keyword arguments pass through: ``wrapped(cfg, **kwargs)`` calls ``task(cfg, info, **kwargs)``."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig, **kwargs) -> dict:
        from randlora.run.results import build_result, write_result

        from randlora.utils.cli_errors import in_single_run

        run = RunInfo(run_dir=Path(str(cfg.paths.output_dir)))  # the task may move it (a resumed run)
        try:
            return task(cfg, run, **kwargs)
        except BaseException as error:
            remove_partial_files(run.run_dir)
            try:
                status = INTERRUPTED if is_interruption(error) else FAILED
                result = build_result(cfg, run_id=run.run_id, started=run.started, status=status,
                                      error=describe_error(error), wall_time_s=run.elapsed())
                path = write_result(run.run_dir, result)
                if in_single_run():
                    log.info("%s run recorded in %s", status.capitalize(), path)
                else:
                    log.error("Run %s (%s); recorded in %s", status, describe_error(error), path)
            except Exception as write_error:  # never hide the original error
                log.error("Run failed and its result could not be written: %s", describe_error(write_error))
            raise
        finally:
            from randlora.run.lock import release_run_lock

            release_run_lock()  # the next job of a sweep worker may lock another folder

    return wrapped
