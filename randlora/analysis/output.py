"""Where analyses write: CSV tables and figures (PNG and PDF by default), progress lines on stderr."""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

STYLES = {"full": ("black", "*"), "lora": ("tab:blue", "o"), "loraplus": ("tab:cyan", "v"),
          "randlora": ("tab:red", "s"), "vera": ("tab:green", "^"), "nola": ("tab:purple", "D"),
          "pretrained": ("tab:gray", "x")}  # method -> (colour, marker)
METRIC_LABELS = {"acc": "accuracy (higher is better)", "rel_error": "relative error (lower is better)"}


def style(method: str, index: int = 0) -> dict:
    """Colour, marker and line style of a method; later runs of one method are dashed/dotted."""
    colour, marker = STYLES.get(method, ("tab:brown", "P"))
    return {"color": colour, "marker": marker, "linestyle": ["-", "--", ":", "-."][index % 4]}


def write_table(frame: pd.DataFrame, out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.csv"
    frame.to_csv(path, index=False)
    progress(f"wrote {path}")
    return path


def save_figure(figure: plt.Figure, out_dir: Path, name: str, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        figure.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
        progress(f"wrote {path}")
    plt.close(figure)
    return paths


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
