"""What data a run saw: a manifest of a prepared dataset folder, and the hash runs record.

A prepared ImageFolder dataset ``<root>/<dataset>/`` carries ``manifest.json``::

    {"dataset": "dtd", "classes": 47, "counts": {"train": 3760, "test": 1880}, "file_list_sha256": "..."}

``file_list_sha256`` is the sha256 of the sorted lines ``<split>/<class folder>/<file name>`` (one per image,
"\\n"-joined), so two labs with the same files in the same classes get the same hash whatever their root
path. The loaders compute the same hash from the files they scanned and the run records it in
``result.json`` (``data_manifest``): equal hashes mean the same images with the same labels and splits.
VTAB-1k and commonsense runs record :func:`files_hash` of the list / JSON files they read instead.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

MANIFEST_FILE = "manifest.json"
CLASSNAMES_FILE = "classnames.txt"


def file_list_hash(entries: Iterable[str]) -> str:
    """sha256 of the sorted, newline-joined ``split/class/file`` entries."""
    return hashlib.sha256("\n".join(sorted(entries)).encode("utf-8")).hexdigest()


def split_entries(split: str, samples: Sequence[tuple[Path, int]]) -> list[str]:
    """``split/<class folder>/<file>`` of ImageFolder samples (the class folder is the file's parent)."""
    return [f"{split}/{Path(path).parent.name}/{Path(path).name}" for path, _ in samples]


def build_manifest(dataset: str, classes: int, counts: Mapping[str, int], entries: Iterable[str]) -> dict:
    return {"dataset": dataset, "classes": int(classes), "counts": dict(counts),
            "file_list_sha256": file_list_hash(entries)}


def write_manifest(folder: str | os.PathLike, manifest: Mapping) -> Path:
    """Write ``<folder>/manifest.json`` atomically."""
    path = Path(folder) / MANIFEST_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_manifest(folder: str | os.PathLike) -> dict | None:
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def read_class_names(folder: str | os.PathLike, class_folders: Sequence[str]) -> list[str] | None:
    """Class names from ``<folder>/classnames.txt`` (line i names class folder i, in sorted order), or None
    when there is no such file. A file whose line count differs from the folders raises ``ValueError``."""
    path = Path(folder) / CLASSNAMES_FILE
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != len(class_folders):
        raise ValueError(f"{path}: {len(names)} class names for {len(class_folders)} class folders in "
                         f"{Path(folder) / 'train'} (one name per line, in the folders' sorted order)")
    return names


def files_hash(paths: Iterable[str | os.PathLike]) -> str:
    """Hash of the (folder/name, sha256 of content) of each file read: what VTAB-1k runs (their list files)
    and commonsense runs (their JSON files) record; the prepared roots' manifests list each file's sha256."""
    entries = [f"{Path(p).parent.name}/{Path(p).name}\t{hashlib.sha256(Path(p).read_bytes()).hexdigest()}"
               for p in paths]
    return file_list_hash(entries)
