"""One process per run folder: a lock file with the holder's PID.

Two ``resume=true`` runs of one interrupted folder started at once would both train it (duplicated metric rows,
interleaved logs, one result overwriting the other). :func:`hold_run_lock` takes an exclusive ``flock`` on
``<run>/.lock`` (which holds the PID) for the life of the run; a second process is refused with
:class:`RunLockedError` naming the holder's PID. The kernel drops the lock when the holder exits, however it
exits (SIGKILL included), so a lock file left behind never blocks a later resume (the file stays: deleting it
would let a process that opened it just before lock a file nobody else sees). :func:`release_run_lock` lets a
sweep worker that runs many jobs drop the previous job's lock. Only the main process of a multi-process run
(rank 0 of DDP / SLURM tasks) takes the lock; the other ranks write nothing of their own.
"""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

LOCK_FILE = ".lock"
_held: dict[str, int] = {}  # run folder -> open file descriptor of its lock file


class RunLockedError(OSError):
    """Another process is training this run folder."""


def is_main_process() -> bool:
    """Rank 0 (or no rank at all) by the variables Lightning's launchers and SLURM set."""
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def hold_run_lock(run_dir: Path) -> Path | None:
    """Lock ``run_dir`` for this process (idempotent; None on other ranks); :class:`RunLockedError` if another
    process holds it."""
    if not is_main_process():
        return None
    run_dir = Path(run_dir)
    key = str(run_dir.resolve())
    if key in _held:
        return run_dir / LOCK_FILE
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunLockedError(f"run folder {run_dir} is being trained by process {holder} (lock {path}); wait "
                                 "for it to end, or stop that process first") from None
        raise
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    _held[key] = descriptor
    return path


def release_run_lock(run_dir: Path | None = None) -> None:
    """Drop this process's lock on ``run_dir`` (all of its locks when None)."""
    keys = list(_held) if run_dir is None else [str(Path(run_dir).resolve())]
    for key in keys:
        descriptor = _held.pop(key, None)
        if descriptor is None:
            continue
        os.close(descriptor)  # closing the only descriptor of the open file releases the flock
