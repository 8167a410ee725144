"""Check a run before Hydra makes its folder.

Hydra creates the run folder (``hydra.run.dir``) before it calls the task function, so a config that fails its
checks inside the task leaves a folder behind that later reads as a failed or incomplete run. Hydra calls
``on_run_start`` of its callbacks before that folder exists: :class:`CheckBeforeRunFolder` runs the entry
point's check there (``check``: the dotted path of a function ``check(cfg)``), and on bad input prints one line
and exits with status 2, leaving nothing on disk. ``HYDRA_FULL_ERROR=1`` shows the traceback instead.

A ``-m`` sweep starts its jobs without ``on_run_start``: there each job checks its own config, and a job whose
config fails is recorded as failed in its folder, like any job that started and failed.
"""
from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback


class CheckBeforeRunFolder(Callback):
    """Run ``check(cfg)`` before a single run's folder exists (see the module docstring)."""

    def __init__(self, check: str) -> None:
        self.check = check

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        from hydra.utils import get_method

        from randlora.utils.cli_errors import EXIT_USER_ERROR, USER_ERRORS, full_error_requested, one_line_message

        try:
            get_method(self.check)(config)
        except USER_ERRORS as error:
            if full_error_requested():
                raise
            print(one_line_message(error), file=sys.stderr, flush=True)
            sys.exit(EXIT_USER_ERROR)
