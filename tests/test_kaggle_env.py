"""Input resolution order and rerun detection."""

from __future__ import annotations

import pytest

from eedi_utils.kaggle_env import (
    COMPETITION,
    is_competition_rerun,
    output_dir,
    resolve_data_dir,
    sample_dir,
)


def test_resolution_order(tmp_path) -> None:
    explicit, from_env, kaggle_root = tmp_path / "a", tmp_path / "b", tmp_path / "input"
    for folder in (explicit, from_env, kaggle_root / COMPETITION):
        folder.mkdir(parents=True)
    env = {"EEDI_DATA_DIR": str(from_env)}
    assert resolve_data_dir(explicit, env, kaggle_root).path == explicit
    assert resolve_data_dir(None, env, kaggle_root).origin == "$EEDI_DATA_DIR"
    assert resolve_data_dir(None, {}, kaggle_root).path == kaggle_root / COMPETITION
    fallback = resolve_data_dir(None, {}, tmp_path / "nowhere")
    assert fallback.path == sample_dir() and fallback.origin == "bundled sample"
    assert (fallback.path / "test.csv").exists()


def test_named_but_missing_folder_is_an_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="from --data-dir not found"):
        resolve_data_dir(tmp_path / "missing", {}, tmp_path)
    with pytest.raises(FileNotFoundError, match="from \\$EEDI_DATA_DIR not found"):
        resolve_data_dir(None, {"EEDI_DATA_DIR": str(tmp_path / "gone")}, tmp_path)


def test_rerun_flag_and_output_dir(tmp_path, monkeypatch) -> None:
    assert is_competition_rerun({"KAGGLE_IS_COMPETITION_RERUN": "1"})
    assert not is_competition_rerun({})
    assert output_dir(tmp_path) == tmp_path
    monkeypatch.chdir(tmp_path)
    assert output_dir(tmp_path / "absent") == tmp_path
