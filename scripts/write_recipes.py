"""Write experiments/<name>/recipe.txt: the resolved config of every paper experiment variant.

    python scripts/write_recipes.py [NAME ...]      (default: every experiment of randlora.experiments.recipes)
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO)) if str(REPO) not in sys.path else None


def main(argv: list[str] | None = None) -> int:
    from randlora.experiments.recipes import RECIPES, write_recipes

    names = list(sys.argv[1:] if argv is None else argv)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        print(f"unknown experiment(s) {unknown}; allowed: {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    for path in write_recipes(names or None):
        print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
