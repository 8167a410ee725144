"""``--check``: compare a prepared root with the expected sizes; one line per problem.

Few-shot (per dataset): the dataset folder and its train/test (and expected val) splits exist; the number of
classes, the images per split and, for balanced datasets, per class equal ``expected.FEWSHOT``; every split uses only the training classes and
every class has training images (a missing class is named); ``classnames.txt`` matches the folders; with
``images=True`` every image is opened (unreadable files are named). VTAB-1k: the four list files per task,
800/200/1000 lines and the test size of ``expected.VTAB_TEST``, labels in range, listed images present.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..images import IMAGE_EXTENSIONS
from ..manifest import CLASSNAMES_FILE, read_manifest
from . import expected


def _class_files(split_dir: Path) -> dict[str, list[Path]]:
    return {c.name: sorted(p for p in c.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            for c in sorted(split_dir.iterdir()) if c.is_dir() and not c.name.startswith(".")}


def unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be decoded as an image, or None."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception as err:  # PIL raises many types for broken files
        return f"{type(err).__name__}: {err}"
    return None


def check_fewshot_dataset(root: Path, name: str, images: bool = True, sizes: expected.Sizes | None = None
                          ) -> list[str]:
    sizes = sizes or expected.FEWSHOT[name]
    folder = root / name
    if not folder.is_dir():
        return [f"{name}: not prepared ({folder} missing; python scripts/prepare_data.py fewshot --root {root} "
                f"--datasets {name})"]
    problems: list[str] = []
    train_dir = folder / "train"
    if not train_dir.is_dir():
        return [f"{name}: {train_dir} missing"]
    train_classes = _class_files(train_dir)
    if len(train_classes) != sizes.classes:
        problems.append(f"{name}/train: {len(train_classes)} classes, expected {sizes.classes}")
    numbered = {int(prefix) for c in train_classes if (prefix := re.split(r"[._]", c)[0]).isdigit()}
    if numbered:
        problems += [f"{name}/train: class {label} missing (no folder {label:03d}*)"
                     for label in range(sizes.classes) if label not in numbered]
    names_file = folder / CLASSNAMES_FILE
    if names_file.is_file():
        count = len([line for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip()])
        if count != len(train_classes):
            problems.append(f"{name}: {names_file.name} has {count} names for {len(train_classes)} class folders")
    for split, want in sizes.splits().items():
        split_dir = folder / split
        if not split_dir.is_dir():
            problems.append(f"{name}/{split}: {split_dir} missing")
            continue
        classes = train_classes if split == "train" else _class_files(split_dir)
        for cls, files in classes.items():
            if cls not in train_classes:
                problems.append(f"{name}/{split}: class folder {cls} is not among the training classes")
            elif split == "train" and not files:
                problems.append(f"{name}/train: class {cls} has no images")
        each = (sizes.per_class or {}).get(split)
        if each is not None:
            problems += [f"{name}/{split}: class {cls} has {len(files)} images, expected {each}"
                         for cls, files in classes.items() if cls in train_classes and len(files) != each]
        found = sum(len(files) for files in classes.values())
        if want != expected.UNKNOWN and found != want:
            problems.append(f"{name}/{split}: {found} images, expected {want}")
        if images:
            problems += [f"{name}/{split}: unreadable image {path}: {why}"
                         for files in classes.values() for path in files if (why := unreadable(path))]
    manifest = read_manifest(folder)
    if manifest is None:
        problems.append(f"{name}: no manifest.json (prepare_data.py writes it)")
    return problems


def check_fewshot(root: Path, names: list[str], images: bool = True) -> list[str]:
    return [line for name in names for line in check_fewshot_dataset(root, name, images)]


def check_vtab(root: Path, names: list[str], images: bool = False) -> list[str]:
    from ..images import read_image_list
    from ..vtab import get_task

    problems: list[str] = []
    for name in names:
        task = get_task(name)
        folder = root / task.folder
        if not folder.is_dir():
            problems.append(f"vtab/{task.name}: {folder} missing")
            continue
        wanted = {**expected.VTAB_LISTS, "test.txt": expected.VTAB_TEST[task.name]}
        for file, want in wanted.items():
            path = folder / file
            if not path.is_file():
                problems.append(f"vtab/{task.name}: {path} missing")
                continue
            try:
                samples = read_image_list(path, folder, task.num_classes)
            except (ValueError, FileNotFoundError) as err:
                problems.append(f"vtab/{task.name}: {err}")
                continue
            if len(samples) != want:
                problems.append(f"vtab/{task.name}: {file} lists {len(samples)} images, expected {want}")
            if images:
                problems += [f"vtab/{task.name}: unreadable image {p}: {why}"
                             for p, _ in samples if (why := unreadable(p))]
    return problems
