"""Refuse, in one line, a results folder that cannot be written, before Hydra tries to create it.

Hydra creates the run folder (``hydra.run.dir``; ``hydra.sweep.dir`` for ``-m``) before any code of ours runs,
so a read-only or forbidden results root ended in Hydra's traceback. :class:`WritableOutput` (a Hydra callback,
``configs/hydra/default.yaml``) first makes and removes a probe folder in the nearest existing ancestor of that
folder (so it leaves nothing behind, even for a config that is refused next); if it cannot, it prints
``Error: cannot write the results folder <path> (<reason>): set paths.root_dir (or paths.results_dir) to a
writable folder`` and exits with status 2, like every other bad input.
"""
from __future__ import annotations

import errno
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from randlora.utils.cli_errors import EXIT_USER_ERROR


def ensure_writable(folder: str | Path) -> None:
    """Exit 2 with one line naming ``folder`` and the reason unless it could be created and written; nothing is
    left on disk (a probe folder is made and removed in its nearest existing ancestor)."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(existing))
        os.rmdir(tempfile.mkdtemp(prefix=".randlora_write_check_", dir=existing))
    except OSError as error:
        reason = error.strerror or type(error).__name__
        print(f"Error: cannot write the results folder {folder} ({existing}): {reason}; set paths.root_dir (or "
              "paths.results_dir) to a writable folder", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)


class WritableOutput(Callback):
    """Check the run folder (single run) or the sweep folder (``-m``) before Hydra creates it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        ensure_writable(str(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        ensure_writable(str(config.hydra.sweep.dir))
