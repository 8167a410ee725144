"""One file from a URL: resumed, checksummed, written atomically, with a progress bar.

torchvision's ``download_url`` neither resumes nor writes atomically and knows only md5, so the pinned
text files (commonsense) come through :func:`fetch`: bytes go to ``<dest>.part`` (an HTTP ``Range`` request
continues an interrupted ``.part``), the finished file is checked against its size, sha256 and/or git blob id,
and only then renamed to ``dest``. A file that fails its check is deleted (part included) and refused; with no
network the error is one line and an empty ``.part`` is removed, so nothing half-written is left as ``dest``.
Image archives keep going through torchvision's own datasets (``download=True``), which verify their md5.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A download that could not be completed or verified; the message is one line for the user."""


@dataclass(frozen=True)
class Expected:
    """What a downloaded file must be: any of byte size, sha256 (hex) and git blob id (sha1 of the blob)."""

    size: int | None = None
    sha256: str | None = None
    git_blob: str | None = None


def git_blob_id(data: bytes) -> str:
    """The id git gives a file's content: sha1 of ``b"blob <size>\\0" + data`` (what a commit's tree lists)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verify(path: Path, expected: Expected) -> str | None:
    """``None`` when ``path`` matches ``expected``, else a sentence saying what differs."""
    data = path.read_bytes()
    if expected.size is not None and len(data) != expected.size:
        return f"{len(data):,} bytes, expected {expected.size:,} (truncated or a different file)"
    if expected.sha256 is not None and hashlib.sha256(data).hexdigest() != expected.sha256:
        return f"sha256 {hashlib.sha256(data).hexdigest()}, expected {expected.sha256}"
    if expected.git_blob is not None and git_blob_id(data) != expected.git_blob:
        return f"git blob id {git_blob_id(data)}, expected {expected.git_blob}"
    return None


def _progress(total: int | None, initial: int, name: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name, leave=False)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders this download created (innermost first) if they are still empty."""
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def fetch(url: str, dest: str | os.PathLike, expected: Expected, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` (see module docstring); an existing ``dest`` that verifies is kept."""
    dest = Path(dest)
    if dest.is_file() and verify(dest, expected) is None:
        return dest
    created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = start > 0 and response.status == 206
            length = response.headers.get("Content-Length")
            total = (int(length) + (start if resumed else 0)) if length else None
            with open(part, "ab" if resumed else "wb") as out, \
                    _progress(total, start if resumed else 0, dest.name) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except http.client.HTTPException as err:  # connection dropped mid-file (IncompleteRead, ...)
        raise DownloadError(f"download of {url} interrupted ({type(err).__name__}); "
                            f"{part.name} kept: run again to resume") from None
    except (urllib.error.URLError, OSError) as err:
        if part.is_file() and part.stat().st_size == 0:
            part.unlink()
        _remove_empty(created)
        reason = getattr(err, "reason", err)
        kept = f"; {part.name} kept to resume" if part.is_file() else ""
        raise DownloadError(f"could not download {url}: {reason} (no network?){kept}") from None
    if total is not None and part.stat().st_size < total:
        raise DownloadError(f"download of {url} stopped at {part.stat().st_size:,} of {total:,} bytes; "
                            f"{part.name} kept: run again to resume")
    problem = verify(part, expected)
    if problem is not None:
        part.unlink()
        _remove_empty(created)
        raise DownloadError(f"refused {url}: {problem}; nothing written to {dest}")
    os.replace(part, dest)
    return dest
