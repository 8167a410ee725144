"""Image datasets shared by VTAB-1k and the few-shot benchmark: (path, label) lists, ImageFolder trees, hub mirrors.

Every dataset here yields ``(transform(image), label)`` with the image opened by PIL and converted to RGB.
"""
from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")

Transform = Callable[[Any], Any]


class BadImageError(ValueError):
    """An image file that PIL cannot read (empty, truncated, not an image); the message names the file."""


def open_rgb(path: str | os.PathLike | io.BytesIO) -> Any:
    """Open an image file as an RGB PIL image (fully read, file handle closed); :class:`BadImageError` names
    a file that cannot be read as an image (zero bytes, truncated, another format)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as error:  # PIL raises these for damaged files
        if isinstance(error, FileNotFoundError):
            raise
        where = "an image in memory" if isinstance(path, io.BytesIO) else str(path)
        size = "" if isinstance(path, io.BytesIO) else f" ({os.path.getsize(path)} bytes)"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BadImageError(f"{where}{size} cannot be read as an image ({reason}); replace or remove the file") from None


class ImageListDataset(Dataset):
    """``(path, label)`` samples; item ``i`` is ``(transform(open_rgb(path_i)), label_i)``."""

    def __init__(self, samples: Sequence[tuple[Path, int]], transform: Transform | None = None):
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        image = open_rgb(path)
        return (self.transform(image) if self.transform is not None else image), label


def read_image_list(list_file: Path, image_root: Path, num_classes: int | None = None) -> list[tuple[Path, int]]:
    """Parse a VTAB-1k list file: one ``relative/path label`` per line (path relative to ``image_root``).

    The label is the last whitespace-separated field, so paths may contain spaces. Blank lines are skipped.
    Raises ``ValueError`` naming the file and line for a malformed line or a label outside ``[0, num_classes)``,
    and ``FileNotFoundError`` listing (up to 5) images that do not exist.
    """
    samples: list[tuple[Path, int]] = []
    with open(list_file, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            fields = line.rsplit(maxsplit=1)
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise ValueError(f"{list_file}:{line_number}: expected 'relative/path label', got {line!r}")
            label = int(fields[1])
            if label < 0 or (num_classes is not None and label >= num_classes):
                raise ValueError(
                    f"{list_file}:{line_number}: label {label} outside [0, {num_classes}) for this task"
                )
            samples.append((image_root / fields[0], label))
    if not samples:
        raise ValueError(f"{list_file}: no samples (expected 'relative/path label' lines)")
    missing = [str(path) for path, _ in samples if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{list_file}: {len(missing)} listed image(s) not found under {image_root}, e.g. {missing[:5]}"
        )
    return samples


def list_class_folders(split_dir: Path) -> list[str]:
    """Sorted names of the class sub-folders of an ImageFolder split directory (hidden folders ignored)."""
    if not split_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {split_dir} (expected <split>/<class>/<image files>)")
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"{split_dir} has no class sub-folders (expected <split>/<class>/<image files>)")
    return classes


def scan_image_folder(split_dir: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """All images of an ImageFolder split as ``(path, label)`` with label = index in ``classes``.

    Files are sorted per class so the listing (and hence seeded sampling) is identical on every machine.
    Class folders not in ``classes`` raise ``ValueError``; a class may be absent from the split.
    """
    found = list_class_folders(split_dir)
    index = {name: i for i, name in enumerate(classes)}
    unknown = [name for name in found if name not in index]
    if unknown:
        raise ValueError(f"{split_dir}: class folder(s) {unknown[:5]} not among the training classes")
    samples: list[tuple[Path, int]] = []
    for name in found:
        files = sorted(
            p for p in (split_dir / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        samples.extend((path, index[name]) for path in files)
    if not samples:
        raise FileNotFoundError(f"{split_dir}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the class folders")
    return samples


# ------------------------------------------------------------------------------------------- hub mirrors

_IMAGE_COLUMNS = ("image", "img", "jpg", "png")
_LABEL_COLUMNS = ("label", "labels", "fine_label", "cls", "class")


def load_hub_split(hub_id: str, split: str, name: str | None = None) -> Any:
    """``datasets.load_dataset(hub_id, name, split=split)`` with one clear error when it cannot be had
    (no network / ``HF_DATASETS_OFFLINE=1``, unknown id, or a missing split)."""
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - datasets is a project dependency
        raise ImportError("loading a hub dataset needs the 'datasets' package") from err
    try:
        return datasets.load_dataset(hub_id, name, split=split)
    except Exception as err:
        offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (offline mode is on: HF_DATASETS_OFFLINE/HF_HUB_OFFLINE=1)" if offline else ""
        raise RuntimeError(
            f"could not load hub dataset '{hub_id}'"
            f"{f' config {name!r}' if name else ''} split '{split}'{hint}: {type(err).__name__}: {err}. "
            f"Use a local copy instead (task.root=...) or check the id."
        ) from err


def pick_column(columns: Sequence[str], candidates: Sequence[str], what: str, hub_id: str) -> str:
    for name in candidates:
        if name in columns:
            return name
    raise ValueError(f"hub dataset '{hub_id}' has no {what} column: columns are {list(columns)}, "
                     f"expected one of {list(candidates)}")


class HubImageDataset(Dataset):
    """Wrap a Hugging Face ``datasets.Dataset`` with an image and an integer label column."""

    def __init__(self, hf_dataset: Any, hub_id: str, transform: Transform | None = None,
                 indices: Sequence[int] | None = None):
        self.data = hf_dataset
        self.image_key = pick_column(hf_dataset.column_names, _IMAGE_COLUMNS, "image", hub_id)
        self.label_key = pick_column(hf_dataset.column_names, _LABEL_COLUMNS, "label", hub_id)
        self.transform = transform
        self.indices = list(indices) if indices is not None else list(range(len(hf_dataset)))

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> list[int]:
        column = self.data[self.label_key]
        return [int(column[i]) for i in self.indices]

    def class_names(self) -> list[str] | None:
        feature = self.data.features.get(self.label_key)
        return list(feature.names) if hasattr(feature, "names") else None

    def __getitem__(self, index: int) -> tuple[Any, int]:
        row = self.data[self.indices[index]]
        image = row[self.image_key]
        if not hasattr(image, "convert"):  # a path or {"bytes", "path"} dict rather than a decoded PIL image
            if isinstance(image, dict):
                image = open_rgb(io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"])
            else:
                image = open_rgb(image)
        image = image.convert("RGB")
        return (self.transform(image) if self.transform is not None else image), int(row[self.label_key])
