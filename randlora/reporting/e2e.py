"""The E2E NLG table of the authors' appendix runs: rows network × adapter, columns the five challenge metrics.

BLEU, METEOR, ROUGE-L in %, NIST and CIDEr as they are; mean ± std over seeds. METEOR shows "—" when the runs
had no WordNet data (see experiments/e2e/README.md). No paper numbers: the appendix's E2E values could not be
read here.
"""
from __future__ import annotations

import pandas as pd

from randlora.reporting.summary import norm_key
from randlora.reporting.tables import ADAPTER_LABELS, MISSING_CELL, Table, format_cell

E2E_COLUMNS = (("bleu", "BLEU", 100.0), ("nist", "NIST", 1.0), ("meteor", "METEOR", 100.0),
               ("rouge_l", "ROUGE-L", 100.0), ("cider", "CIDEr", 1.0))


def e2e_table(summary: pd.DataFrame) -> Table:
    """One row per (backbone, adapter, rank) of the ``e2e_nlg`` runs in ``summary``."""
    runs = summary[(summary["task"] == "e2e_nlg") & (summary["status"] == "ok")] if len(summary) else summary
    rows = []
    for record in runs.to_dict("records"):
        rank = norm_key(record["rank"])
        row = [record["backbone"], ADAPTER_LABELS.get(record["adapter"], record["adapter"])
               + ("" if rank is None else f" r{rank}")]
        for key, _, scale in E2E_COLUMNS:
            mean, std = record.get(f"test/{key}:mean"), record.get(f"test/{key}:std")
            row.append(MISSING_CELL if mean is None or pd.isna(mean) else
                       format_cell(mean * scale, None if std is None or pd.isna(std) else std * scale,
                                   int(record["n"]), digits=2 if scale == 1.0 else 1))
        rows.append(row)
    notes = ["Ours: mean ± std over seeds on the E2E test set (630 MRs, all references of each MR together); BLEU, "
             "METEOR, ROUGE-L in %. Metrics from nltk / rouge-score / our CIDEr-D, not the official e2e-metrics "
             f"script (experiments/e2e/README.md). No paper numbers could be read here. {MISSING_CELL} = no value."]
    return Table("E2E NLG (the authors' appendix runs): test scores", ["network", "adapter",
                 *(label for _, label, _ in E2E_COLUMNS)], sorted(rows), notes, label_columns=2)
