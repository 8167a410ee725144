"""Logging tidy-up for runs under Hydra (which already configures the root logger)."""
from __future__ import annotations

import logging


class _DropTips(logging.Filter):
    """Drop Lightning's advertising tips (e.g. the LitLogger one); keep everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def tidy_lightning_logging() -> None:
    """Print Lightning's messages once: through the root logger when it has handlers (Hydra's), not twice."""
    lightning_logger = logging.getLogger("lightning")
    if logging.getLogger().hasHandlers():
        for handler in list(lightning_logger.handlers):
            lightning_logger.removeHandler(handler)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())
