"""Writing a dataset in the layout the few-shot loader reads, all or nothing.

    <root>/<dataset>/{train,test[,val]}/<class i>/<image>     class folders sort in label order
    <root>/<dataset>/classnames.txt                           line i: the prompt name of label i
    <root>/<dataset>/manifest.json                            counts + hash of the file list (randlora.data.manifest)

Class folder i is ``randlora.data.classnames.class_folder(dataset, i)`` ("000.<curated name>", the layout the
few-shot loader recognises as prepared) for the 22 curated datasets, else ``NNN_<source name>``.
Everything is written into ``<root>/<dataset>.partial/`` and renamed to ``<root>/<dataset>`` only when the
whole dataset is there, so an interrupted conversion never leaves a folder that looks prepared. Source files
are hard-linked where the file system allows (else copied); decoded images (in-memory datasets, crops) are
saved as PNG, which keeps their pixels exactly.
"""
from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..manifest import CLASSNAMES_FILE, build_manifest, write_manifest


def folder_name(label: int, num_classes: int, source_name: str) -> str:
    """``NNN_slug``: zero-padded label (so folders sort in label order) + a file-system-safe source name."""
    width = max(3, len(str(num_classes - 1)))
    slug = re.sub(r"[^A-Za-z0-9]+", "_", source_name).strip("_")[:60] or "class"
    return f"{label:0{width}d}_{slug}"


def _folders(dataset: str, source_names: Sequence[str]) -> list[str]:
    from .. import classnames

    if dataset in classnames.curated_datasets() and len(classnames.class_names(dataset)) == len(source_names):
        return classnames.class_folders(dataset)
    return [folder_name(i, len(source_names), n) for i, n in enumerate(source_names)]


class DatasetWriter:
    """Collect one dataset's images split by split; :meth:`finish` makes it appear atomically."""

    def __init__(self, root: str | os.PathLike, dataset: str, class_names: Sequence[str],
                 source_names: Sequence[str] | None = None):
        self.final = Path(root) / dataset
        self.partial = Path(root) / f"{dataset}.partial"
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        self.dataset = dataset
        self.class_names = list(class_names)
        names = list(source_names) if source_names is not None else self.class_names
        if len(names) != len(self.class_names):
            raise ValueError(f"{dataset}: {len(names)} source class names for {len(self.class_names)} classes")
        self.folders = _folders(dataset, names)
        self.counts: Counter[str] = Counter()
        self.entries: list[str] = []

    def _target(self, split: str, label: int, file_name: str) -> Path:
        if not 0 <= label < len(self.folders):
            raise ValueError(f"{self.dataset}/{split}: label {label} outside [0, {len(self.folders)})")
        folder = self.partial / split / self.folders[label]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / file_name
        if target.exists():
            raise ValueError(f"{self.dataset}/{split}: two images named {file_name} in class {self.folders[label]}")
        self.counts[split] += 1
        self.entries.append(f"{split}/{self.folders[label]}/{file_name}")
        return target

    def add_file(self, split: str, label: int, source: str | os.PathLike, file_name: str | None = None) -> None:
        """Link (or copy) an existing image file into ``split`` under class ``label``."""
        source = Path(source)
        target = self._target(split, label, file_name or source.name)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)

    def add_image(self, split: str, label: int, image: Any, file_name: str) -> None:
        """Save a decoded PIL image as PNG (``file_name`` should end in .png)."""
        image.save(self._target(split, label, file_name), format="PNG")

    def finish(self) -> dict:
        """Write classnames.txt and manifest.json, replace any earlier ``<dataset>`` folder; return the manifest.
        Every class gets its folder in every split, even without images, so labels stay the folder indices."""
        for split in self.counts:
            for folder in self.folders:
                (self.partial / split / folder).mkdir(parents=True, exist_ok=True)
        (self.partial / CLASSNAMES_FILE).write_text("\n".join(self.class_names) + "\n", encoding="utf-8")
        manifest = build_manifest(self.dataset, len(self.class_names), dict(sorted(self.counts.items())),
                                  self.entries)
        write_manifest(self.partial, manifest)
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self.partial, self.final)
        return manifest

    def abort(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)
