"""Atomic file publication that keeps the permissions a plain ``open`` would give.

Files are written to a temporary name in the target folder and renamed into place (``os.replace``), so a kill
never leaves a truncated file under the real name. Temporary files made by :func:`tempfile.mkstemp` or by
safetensors are private (mode 0600); :func:`publish` gives the file the mode ``open`` would have given it
(0666 minus the process's umask, 0644 with the usual umask 022) before the rename, so collaborators on a shared
cluster can read results and adapters.
"""
from __future__ import annotations

import os
import re
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        match = re.search(r"^Umask:\s+([0-7]+)", Path("/proc/self/status").read_text(), re.M)
        if match:
            return int(match.group(1), 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only where /proc is missing)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode of a new file made by ``open(path, "w")``: 0666 minus the umask."""
    return 0o666 & ~current_umask()


def publish(temporary: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Give ``temporary`` the default file mode, then rename it to ``path`` atomically; return ``path``."""
    os.chmod(temporary, default_file_mode())
    os.replace(temporary, path)
    return Path(path)
