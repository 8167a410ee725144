"""Take a trained adapter out of the project, or bring a PEFT adapter in.

    python scripts/export.py RUN_DIR --format merged --out DIR   # W0 + ΔW in the backbone's own format
    python scripts/export.py RUN_DIR --format peft --out DIR     # PEFT adapter folder (LoRA, LoRA+, VeRA, RandLoRA)
    python scripts/export.py import PEFT_DIR --out DIR backbone=minilm task=tweets   # PEFT folder -> our adapter

Every exported folder has provenance.json (run id, config, metrics, basis checksum). Logic: randlora/export/.
"""
import sys

from randlora.export.cli import main

if __name__ == "__main__":
    sys.exit(main())
