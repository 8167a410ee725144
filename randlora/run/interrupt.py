"""A run stopped by a signal exits non-zero with one line saying how to continue it.

Lightning turns SIGTERM (a scheduler pre-empting or cancelling the job, ``kill``) into ``SIGTERMException``, a
``SystemExit`` without a code, and Ctrl-C into ``sys.exit(1)``: left alone, a pre-empted job would exit 0 and
look done to a scheduler or a ``set -e`` script. The entry points run their work inside :func:`exit_on_interrupt`,
which (after :func:`randlora.run.task_wrapper.task_wrapper` recorded the run as ``interrupted``) logs one line
and exits with

- :data:`EXIT_SIGTERM` = 143 (128 + 15, the shell's code for a SIGTERM'd process) after SIGTERM,
- :data:`EXIT_CTRL_C` = 130 (128 + 2) after Ctrl-C,

both meaning "interrupted, resumable": the same command with ``resume=true`` continues the run from its last
checkpoint (the end of its latest epoch). Other ``SystemExit`` codes pass through unchanged.
"""
from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_SIGTERM = 143
EXIT_CTRL_C = 130


def interruption_exit_code(error: BaseException) -> int | None:
    """143 for Lightning's SIGTERMException, 130 for Ctrl-C (KeyboardInterrupt, Lightning's exit(1)), else None."""
    if type(error).__name__ == "SIGTERMException":
        return EXIT_SIGTERM
    if isinstance(error, KeyboardInterrupt) or (isinstance(error, SystemExit) and error.code == 1):
        return EXIT_CTRL_C
    return None


def resume_command(argv: list[str] | None = None) -> str:
    """This process's command line with ``resume=true`` in place of any ``resume=...`` it had."""
    argv = list(sys.argv if argv is None else argv)
    kept = [a for a in argv[1:] if not a.lstrip("+").startswith("resume=")]
    return shlex.join(["python", argv[0].rsplit("/", 1)[-1], *kept, "resume=true"])


@contextmanager
def exit_on_interrupt(logger: logging.Logger, how_to_continue: Callable[[], str]) -> Iterator[None]:
    """On SIGTERM / Ctrl-C: log ``Interrupted by <signal>: <how_to_continue()>`` and exit 143 / 130."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit) as error:
        code = interruption_exit_code(error)
        if code is None:
            raise
        signal_name = "SIGTERM" if code == EXIT_SIGTERM else "Ctrl-C"
        logger.error(f"Interrupted by {signal_name} (exit status {code}): {how_to_continue()}")
        sys.exit(code)
