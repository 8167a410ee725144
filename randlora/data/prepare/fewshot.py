"""``prepare_data.py fewshot``: the paper's 22 datasets in the authors' splits, laid out for the few-shot loader.

Raw downloads and hand-fetched sources live in ``<downloads>/<dataset>/`` (default ``<root>/_downloads``):
torchvision fills it for the datasets it can download; for cars, resisc45, sun397, imagenet and ucf101 the
user puts the files there (``fewshot_manual.INSTRUCTIONS``). The result is ``<root>/<dataset>/`` (layout.py).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..fewshot import DATASETS
from . import fewshot_manual as manual
from . import fewshot_torchvision as tv


class SourceMissing(FileNotFoundError):
    """A hand-fetched source is not where it should be; the message says what to fetch and where."""


MANUAL = ("cars", "resisc45", "sun397", "imagenet", "ucf101")


def _dtd(source: Path, out: Path, download: bool, progress: Callable) -> dict:
    """``source/{images,labels}`` as fetched by hand, else torchvision's download (``source/dtd/dtd/``)."""
    if not (source / "labels").is_dir():
        import torchvision.datasets

        torchvision.datasets.DTD(str(source), partition=1, download=download)
        source = source / "dtd" / "dtd"
    return manual.convert_dtd(source, out, progress)


def _eurosat(source: Path, out: Path, download: bool, progress: Callable) -> dict:
    """``source/2750/`` as fetched by hand, else torchvision's download (``source/eurosat/2750/``)."""
    if not (source / "2750").is_dir():
        import torchvision.datasets

        torchvision.datasets.EuroSAT(str(source), download=download)
        source = source / "eurosat"
    return manual.convert_eurosat(source, out, progress)


def prepare_one(name: str, root: Path, downloads: Path, download: bool = True,
                progress: Callable[[Any], Any] = lambda items: items) -> dict:
    """Prepare one dataset; returns its manifest. ``SourceMissing`` names what to fetch for manual ones."""
    if name not in DATASETS:
        raise ValueError(f"--datasets: unknown few-shot dataset '{name}'; allowed: {', '.join(DATASETS)}")
    source = downloads / name
    if name in MANUAL and not source.is_dir():
        raise SourceMissing(f"{name}: fetch by hand into {source}: {manual.INSTRUCTIONS[name]}")
    try:
        if name in tv.SOURCES:
            return tv.convert(name, root, source, download=download, progress=progress)
        if name == "dtd":
            return _dtd(source, root, download, progress)
        if name == "eurosat":
            return _eurosat(source, root, download, progress)
        if name == "cub200":
            return manual.convert_cub200(source, root, download=download, progress=progress)
        converter = {"resisc45": manual.convert_resisc45, "sun397": manual.convert_sun397,
                     "ucf101": manual.convert_ucf101}[name]
        return converter(source, root, progress)
    except (FileNotFoundError, RuntimeError) as err:
        if name in MANUAL:
            raise SourceMissing(f"{name}: {err} ({manual.INSTRUCTIONS[name]})") from err
        raise
