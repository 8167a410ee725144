"""One owner per fact, runs that never lose data, what a person sees (issue 11): cheap checks, no training."""
from __future__ import annotations

import os
import stat

import pytest
from torch import nn


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_atomic_writes_keep_the_umask_mode(tmp_path, mask):
    """result.json and adapter.safetensors get 0666 minus the umask, like every other file (was mkstemp's 0600)."""
    from randlora.adapters import inject, save_adapter
    from randlora.run.results import write_json_atomic

    previous = os.umask(mask)
    try:
        model = nn.Sequential(nn.Linear(4, 4))
        inject(model, {"name": "lora", "rank": 2, "targets": ["0"]})
        adapter = save_adapter(model, tmp_path / "adapter.safetensors")
        result = write_json_atomic(tmp_path / "result.json", {"ok": True})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(previous)
    assert _mode(plain) == 0o666 & ~mask
    assert _mode(result) == _mode(plain) and _mode(adapter) == _mode(plain)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
