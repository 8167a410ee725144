"""The command line of scripts/export.py: parse, call the export functions, report in one line per fact.

    python scripts/export.py RUN_DIR --format merged|peft --out DIR
    python scripts/export.py import PEFT_DIR --out DIR [backbone=... task=... seed=... (train.py overrides)]

Bad input ends with one line naming what is wrong and exit status 2; nothing half-written is left.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

USAGE = __doc__.split("\n\n")[1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    if argv[:1] == ["import"]:
        parser = argparse.ArgumentParser(prog="export.py import", description="PEFT adapter folder -> our adapter "
                                         "file (OUT/adapter.safetensors + OUT/import.json) for the backbone the "
                                         "overrides compose, e.g. backbone=minilm task=tweets")
        parser.add_argument("peft_dir", type=Path)
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("overrides", nargs="*", help="train.py-style key=value overrides")
        args = parser.parse_intermixed_args(argv[1:])
        args.command = "import"
        return args
    parser = argparse.ArgumentParser(prog="export.py", usage=USAGE, description="Export a finished run's adapter "
                                     "as a merged model in the backbone's own format or as a PEFT adapter folder")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--format", choices=("merged", "peft"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.command = "export"
    return args


def import_config(overrides: list[str]) -> dict[str, Any]:
    """The resolved training config the overrides compose (what a run's result.json would hold)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from randlora.utils.config import compose_config

    bad = [item for item in overrides if "=" not in item]
    if bad:
        raise ValueError(f"override {bad[0]!r} is not key=value (e.g. backbone=minilm task=tweets)")
    cfg = compose_config(overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True)


def run(args: argparse.Namespace) -> str:
    from randlora.export import export_merged, export_peft, import_peft, load_run
    from randlora.export.folders import check_new_folder
    from randlora.export.peft_export import check_method

    check_new_folder(args.out)
    if (args.command == "import" or args.format == "peft") and importlib.util.find_spec("peft") is None:
        raise ValueError("PEFT folders need the peft package: pip install peft (it is in the dev extra)")
    if args.command == "import":
        out = import_peft(args.peft_dir, import_config(args.overrides), args.out)
        return (f"Imported {args.peft_dir} -> {out / 'adapter.safetensors'}; score it with: python eval.py "
                f"adapter_path={out / 'adapter.safetensors'}")
    if args.format == "peft":
        check_method(args.run_dir)
    loaded = load_run(args.run_dir)
    if args.format == "merged":
        return f"Merged model: {export_merged(loaded, args.out)}"
    sizes = export_peft(loaded, args.out)
    ratio = sizes["peft_adapter_bytes"] / sizes["our_adapter_bytes"]
    why = ("; PEFT stores the random projections that our file regenerates from basis_seed"
           if sizes["peft_type"] in ("VERA", "RANDLORA") else "")
    return (f"PEFT adapter: {args.out}  ({sizes['peft_adapter_bytes']:,} bytes, ours {sizes['our_adapter_bytes']:,}: "
            f"x{ratio:.1f}{why})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        print(run(args))
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
