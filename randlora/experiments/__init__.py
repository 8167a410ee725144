"""One command per paper table or figure: enumerate its cells, run those without an ok result, render.

    experiment_cells(name, settings, extra) -> [Cell]        the cells of a table or figure       (paper.py)
    done_cells(cells, runs) -> [bool]                        which already have an ok result      (cells.py)
    sweeps(cells) -> [overrides], launch(cells, launcher, ...)  run the pending ones              (launch.py)
    render(name, cells, runs_dir, out_dir)                   summaries, tables, figures           (render.py)

``scripts/run_experiment.py`` wires them; ``experiments/<name>/run.sh`` calls it.
"""
from randlora.experiments.cells import Cell, belongs, done_cells, make_cell, regime_overrides, variant_keys
from randlora.experiments.launch import LAUNCHERS, launch, sweeps
from randlora.experiments.paper import EXPERIMENTS, experiment_cells

__all__ = ["Cell", "EXPERIMENTS", "LAUNCHERS", "belongs", "done_cells", "experiment_cells", "launch", "make_cell",
           "regime_overrides", "sweeps", "variant_keys"]
