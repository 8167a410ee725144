"""Turn a user's mistake into one clear line and a non-zero exit, instead of a traceback wall.

The command-line entry points (``python train.py``, ``python eval.py``) run their work inside
:func:`exit_on_user_error`. An error caused by the input (:data:`USER_ERRORS`: an invalid config value, a
missing file, a malformed data record, a non-finite loss, an adapter file that does not fit the model, an
OSError of the environment such as a model not available offline or a full disk) is
logged as one line ``<label>: <message>`` -- the message names the key or file, the bad value and what is
allowed -- and the process exits with :data:`EXIT_USER_ERROR`. Other exceptions (bugs) propagate as usual.

The traceback is kept when asked for (``HYDRA_FULL_ERROR=1``) and in a ``-m`` sweep, where Hydra's launcher
must see the exception to record the job as failed and go on with the others.
"""
from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf.errors import OmegaConfBaseException

from randlora.utils.validate import ConfigError

EXIT_USER_ERROR = 2

# ValueError covers ConfigError, the libraries' validation errors (adapter/backbone/data configs, data
# records, adapter files) and json errors; FloatingPointError covers the NaN/Inf loss stop.
# OSError covers the environment's refusals: a model id that is not cached offline (the backbones' own OSError
# says what to download), a full disk, a folder that cannot be written.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, OSError, FloatingPointError, OmegaConfBaseException,
)


def error_label(error: BaseException) -> str:
    """``Invalid config`` for a :class:`ConfigError`, ``Missing file`` for a missing path, else ``Error``."""
    if isinstance(error, ConfigError):
        return "Invalid config"
    if isinstance(error, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return "Missing file"
    if isinstance(error, FloatingPointError):
        return "Training diverged"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "Disk full"
    if isinstance(error, PermissionError) or (isinstance(error, OSError) and error.errno == errno.EROFS):
        return "Cannot write"
    return "Error"


def one_line_message(error: BaseException) -> str:
    """``<label>: <message>``, the message without the exception's type or a traceback.

    An OSError reads ``<reason>: <file>`` (``no space left on <file>``), not ``[Errno 28] ...: '<file>'``; an error re-raised from a
    DataLoader worker process keeps only its last line, the original error's."""
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        message = (f"no space left on {error.filename}" if error.errno == errno.ENOSPC
                   else f"{error.strerror}: {error.filename}")
    if "Original Traceback" in message:
        message = message.strip().splitlines()[-1].split(": ", 1)[-1]
    message = " ".join(message.split())  # one line, even for a library's multi-line message
    return f"{error_label(error)}: {message.strip() or type(error).__name__}"


def in_single_run() -> bool:
    """True inside a plain ``python train.py`` (not ``-m``); also True outside a Hydra app."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.RUN
    except ValueError:  # HydraConfig not set: called outside a Hydra app
        return True


def full_error_requested() -> bool:
    """``HYDRA_FULL_ERROR=1``: the user wants the complete traceback."""
    return os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0")


@contextmanager
def exit_on_user_error(logger: logging.Logger) -> Iterator[None]:
    """Log a :data:`USER_ERRORS` exception as one line and exit with status 2 (single runs, no full error)."""
    try:
        yield
    except USER_ERRORS as error:
        if full_error_requested() or not in_single_run():
            raise
        logger.error(one_line_message(error))
        sys.exit(EXIT_USER_ERROR)


def group_options(group: str, configs_dir: Path) -> list[str]:
    """The options of a config group: ``configs/<group>/**/<name>.yaml`` as ``name`` (``fig3_clip/randlora``)."""
    folder = configs_dir / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def unknown_option_message(argv: list[str], groups: tuple[str, ...], configs_dir: Path) -> str | None:
    """The one-line error for the first ``group=option`` in ``argv`` whose config file does not exist, or None.

    Hydra reports such an option only after its search-path listing (and ignores an unknown ``optional`` one,
    e.g. ``local=``). Sweep lists (``adapter=lora,randlora``) are checked item by item; sweep functions
    (``choice(...)``), ``null`` and deletions (``~group``) are left to Hydra.
    """
    for argument in argv:
        key, sep, value = argument.partition("=")
        group = key.lstrip("+").split("@")[0]
        if not sep or argument.startswith(("-", "~")) or group not in groups or "(" in value or value in ("", "null"):
            continue
        for option in value.split(","):
            if not (configs_dir / group / f"{option}.yaml").is_file():
                options = group_options(group, configs_dir)
                choices = (f"choose one of {', '.join(options)}" if options
                           else f"there are none yet (add configs/{group}/<name>.yaml)")
                return f"{group}={option}: no such option (configs/{group}/{option}.yaml does not exist); {choices}"
    return None


def refuse_unknown_options(groups: tuple[str, ...], argv: list[str] | None = None,
                           configs_dir: Path | None = None) -> None:
    """Exit with one line (status 2) when the command line names a config-group option that does not exist."""
    from randlora.utils.config import CONFIGS_DIR

    message = unknown_option_message(sys.argv[1:] if argv is None else argv, groups, configs_dir or CONFIGS_DIR)
    if message is not None and not full_error_requested():
        print(f"Invalid config: {message}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
