"""Refuse, in one line, a results folder that cannot be written, before Hydra tries to create it.

Hydra creates the run folder (``hydra.run.dir``; ``hydra.sweep.dir`` for ``-m``) before any code of ours runs,
so a read-only or forbidden results root ended in Hydra's traceback. :class:`WritableOutput` (a Hydra callback,
``configs/hydra/default.yaml``) first creates the folder that will hold it (the run folder itself is left to
Hydra, which names it) and writes a probe file there; if it cannot, it prints
``Error: cannot write the results folder <path> (<reason>): set paths.root_dir (or paths.results_dir) to a
writable folder`` and exits with status 2, like every other bad input.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from randlora.utils.cli_errors import EXIT_USER_ERROR


def ensure_writable(folder: str | Path) -> None:
    """Create ``folder`` (and its parents) or exit 2 with one line naming it and the reason."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".randlora_write_check"
        probe.touch()
        probe.unlink()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        where = f"{folder}" if error.filename in (None, str(folder)) else f"{folder} ({error.filename})"
        print(f"Error: cannot write the results folder {where}: {reason}; set paths.root_dir (or "
              "paths.results_dir) to a writable folder", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)


class WritableOutput(Callback):
    """Check the run folder (single run) or the sweep folder (``-m``) before Hydra creates it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        ensure_writable(Path(str(config.hydra.run.dir)).parent)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        ensure_writable(str(config.hydra.sweep.dir))
