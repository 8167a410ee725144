"""Output folders that appear whole or not at all."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def check_new_folder(out: str | Path) -> Path:
    """`out` must not exist yet (or be an empty folder): exports never overwrite or mix with other files."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"--out {out} already exists and is not an empty folder; choose a new folder")
    return out


@contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `out` to write into; rename it to `out` on success, delete it on failure."""
    out = check_new_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
