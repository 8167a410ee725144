"""Trained adapters out of (and into) the project.

    run = load_run(RUN_DIR)                  # the run's backbone, adapter loaded
    export_merged(run, OUT)                  # W0 + ΔW in the backbone's own format (merged.py)
    export_peft(run, OUT)                    # a PEFT adapter folder (peft_export.py)
    import_peft(PEFT_DIR, config, OUT)       # a PEFT LoRA / VeRA / RandLoRA folder -> our adapter file

Every exported folder records where it came from in provenance.json (run id, config, metrics, basis checksum).
"""
from .merged import export_merged
from .peft_export import NotExpressible, export_peft
from .peft_import import import_peft
from .source import PROVENANCE_FILE, load_run

__all__ = ["NotExpressible", "PROVENANCE_FILE", "export_merged", "export_peft", "import_peft", "load_run"]
