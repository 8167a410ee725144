"""Prepare and check a benchmark's data: ``python scripts/prepare_data.py <fewshot|vtab|commonsense> --root DIR
[--datasets a,b] [--check]`` (``--help`` for all options; logic in ``randlora.data.prepare``)."""
import sys

from randlora.data.prepare.command import main

if __name__ == "__main__":
    sys.exit(main())
