"""`eedi train` on 2 CPU processes (torchrun, gloo): mining once per round on rank 0, steps
split across ranks, one model saved."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import pytest

from eedi_utils.config import load_config
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.splits import config_folds


@pytest.mark.slow
def test_two_process_training(sample, tiny_model, tmp_path) -> None:
    torchrun = shutil.which("torchrun")
    assert torchrun, "torchrun comes with torch"
    config = tmp_path / "kit.toml"
    config.write_text(
        "[retrieval]\nshow_progress = false\n[evaluate]\nfolds = 3\n"
        f'[train]\nbase_model = "{tiny_model}"\nbatch_size = 8\nn_negatives = 1\nepochs = 2\n'
        'mixed_precision = "no"\n'
    )
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            torchrun,
            "--nproc_per_node",
            "2",
            "-m",
            "eedi_utils.cli",
            "train",
            "--data-dir",
            str(sample),
            "--output-dir",
            str(out),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stderr.count("mining round 0") == 1
    assert result.stderr.count("mining round 1") == 1
    assert sorted(p.name for p in (out / "negatives").glob("*.npy")) == [
        "round-0.npy",
        "round-1.npy",
    ]
    records = sorted(p.name for p in (out / "negatives").glob("*.json"))  # what made each round
    assert records == ["round-0.json", "round-1.json"]

    train = labelled(CompetitionData(sample).train())
    rows = len(config_folds(train, load_config(config).evaluate)[0].train_rows)
    single_process_steps = math.ceil(rows / 8)
    checkpoints = sorted(
        int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*")
    )
    per_epoch = checkpoints[0]
    assert checkpoints == [per_epoch, 2 * per_epoch]  # one checkpoint per epoch end
    assert per_epoch <= math.ceil(single_process_steps / 2)  # each step used both ranks
    assert [h["epoch"] for h in json.loads((out / "metrics.json").read_text())] == [0, 1, 2]
    assert (out / "model.safetensors").exists()
