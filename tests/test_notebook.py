"""The inference notebook runs as a script and as a notebook, and writes a valid submission."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

from eedi_utils.data import CompetitionData
from eedi_utils.submission import read_submission, validate_submission

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK = NOTEBOOKS / "inference.py"


def assert_valid_submission(path: Path, data_dir: Path) -> None:
    data = CompetitionData(data_dir)
    ids = set(data.misconceptions["MisconceptionId"])
    validate_submission(read_submission(path), data.test(), ids)


def execute(notebook, folder: Path) -> str:
    """Run every cell with nbclient in `folder`; return the printed text of all cells and
    the MIME types of what they displayed (one "<mime>" per line)."""
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    printed = "".join(o.get("text", "") for o in outputs)
    shown = "".join(f"<{mime}>\n" for o in outputs for mime in o.get("data", {}))
    return printed + shown


@pytest.fixture()
def tiny_config(tmp_path, tiny_model) -> Path:
    path = tmp_path / "kit.toml"
    path.write_text(
        f'[retrieval]\nmodels = ["{tiny_model}"]\nshow_progress = false\n[evaluate]\nfolds = 3\n'
    )
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("EEDI_DATA_DIR", "EEDI_CONFIG", "KAGGLE_IS_COMPETITION_RERUN")
    }
    return {**env, **extra}


@pytest.mark.slow
def test_script_runs_the_main_job_on_the_bundled_sample(tmp_path, sample) -> None:
    result = subprocess.run(
        [sys.executable, str(NOTEBOOK)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(bundled sample)" in result.stdout
    assert '"map@25"' in result.stdout  # the commit-run CV report
    assert_valid_submission(tmp_path / "submission.csv", sample)


def test_rerun_mode_skips_cv(tmp_path, sample, tiny_config) -> None:
    env = clean_env(
        EEDI_CONFIG=str(tiny_config), EEDI_DATA_DIR=str(sample), KAGGLE_IS_COMPETITION_RERUN="1"
    )
    result = subprocess.run(
        [sys.executable, str(NOTEBOOK)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "map@25" not in result.stdout and "($EEDI_DATA_DIR)" in result.stdout
    assert_valid_submission(tmp_path / "submission.csv", sample)


def test_executes_as_a_notebook(tmp_path, sample, tiny_config, monkeypatch) -> None:
    notebook = jupytext.read(NOTEBOOK)
    assert [c.cell_type for c in notebook.cells].count("code") == 6
    monkeypatch.setenv("EEDI_CONFIG", str(tiny_config))
    monkeypatch.delenv("EEDI_DATA_DIR", raising=False)
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    outputs = execute(notebook, tmp_path)
    assert "data: " in outputs and "wrote " in outputs and '"unseen"' in outputs
    assert "<text/html>" in outputs  # the preview table of a few predictions
    assert_valid_submission(tmp_path / "submission.csv", sample)


def test_train_notebook_runs_end_to_end(tmp_path, sample, tiny_model, monkeypatch) -> None:
    config = tmp_path / "kit.toml"
    config.write_text(
        "[retrieval]\nshow_progress = false\n[evaluate]\nfolds = 3\n"
        f'[train]\nbase_model = "{tiny_model}"\nepochs = 1\nbatch_size = 8\nn_negatives = 1\n'
        'mixed_precision = "no"\n'
    )
    notebook = jupytext.read(NOTEBOOKS / "train.py")
    monkeypatch.setenv("EEDI_CONFIG", str(config))
    monkeypatch.setenv("EEDI_OUTPUT_DIR", str(tmp_path / "model"))
    monkeypatch.delenv("EEDI_DATA_DIR", raising=False)
    outputs = execute(notebook, tmp_path)
    assert "(bundled sample)" in outputs and '"epoch": 1' in outputs
    assert (tmp_path / "model" / "modules.json").exists()
    assert (tmp_path / "model" / "training_curves.png").exists()
    assert "<image/png>" in outputs  # the curves, shown inline
