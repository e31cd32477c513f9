"""`eedi train` and `eedi train-reranker` on 2 CPU processes (torchrun, gloo): mining once per
round on rank 0, steps split across ranks, one model saved; the reranker's evaluations only
while no process holds its training model."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    assert result.stderr.count("epoch 0:") == 1  # one process group from the start
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
    history = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert history[-1]["scored"].startswith("saved model, loaded as eedi predict loads it")
    assert result.stderr.count("unseen prior stored:") == 1  # the main process reports
    assert (out / "model.safetensors").exists()


def intervals(events: list[dict], start: str, end: str) -> list[tuple[float, float]]:
    starts = [e["time"] for e in events if e["event"] == start]
    ends = [e["time"] for e in events if e["event"] == end]
    assert len(starts) == len(ends), events
    return list(zip(starts, ends))


@pytest.mark.slow
def test_two_process_reranker_evaluates_only_when_no_process_holds_its_model(
    sample, tiny_llm, tmp_path
) -> None:
    """`eedi train-reranker` on 2 CPU processes (torchrun, gloo): the main process's held-out
    evaluations (before, after: the [rerank] stage, vLLM over every GPU on CUDA) start only
    after every process has released its training model. vLLM 0.19.1 refuses to start on a
    GPU whose free memory is below gpu_memory_utilization x total (`vllm/v1/worker/utils.py`,
    `request_memory`), so a model still on GPU 1 would stop it, and rank 1 would wait in DDP
    for the collective timeout. Events are recorded by tests/ddp_events.py."""
    from eedi_utils.embedder import default_model_path

    out, events = tmp_path / "out", tmp_path / "events"
    events.mkdir()
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EEDI_EVENTS": str(events),
           "PYTHONPATH": str(repo)}  # fmt: skip
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",  # torchrun, from this environment
            "--nproc_per_node",
            "2",
            str(repo / "tests" / "ddp_events.py"),
            "train-reranker",
            "--quiet",
            "--data-dir",
            str(sample),
            "--output-dir",
            str(out),
            "--train-reranker-base-model",
            str(tiny_llm),
            "--train-reranker-retrievers",
            f'["{default_model_path()}"]',
            "--train-reranker-mode",
            "pointwise",
            "--train-reranker-group-size",
            "4",
            "--train-reranker-lora-r",
            "4",
            "--train-reranker-batch-size",
            "4",
            "--train-reranker-gradient-accumulation-steps",
            "1",
            "--train-reranker-mixed-precision",
            "no",
            "--train-reranker-save-dtype",
            "float32",
            "--train-reranker-eval-rows",
            "8",
            "--rerank-windows",
            "[[1, 4]]",
            "--no-rerank-reverse-pass",
            "--rerank-dtype",
            "float32",
            "--folds",
            "3",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=repo,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = {
        path.stem: [json.loads(line) for line in path.read_text().splitlines()]
        for path in events.glob("rank-*.jsonl")
    }
    assert set(ranks) == {"rank-0", "rank-1"}
    held = {rank: intervals(e, "load", "release") for rank, e in ranks.items()}
    assert all(len(spans) == 1 for spans in held.values()), held  # each trained once
    evaluations = intervals(ranks["rank-0"], "evaluate", "evaluated")
    assert len(evaluations) == 2 and not intervals(ranks["rank-1"], "evaluate", "evaluated")
    for start, end in evaluations:  # before and after
        for rank, spans in held.items():
            for loaded, released in spans:
                assert released < start or loaded > end, (rank, held, evaluations)
    reports = json.loads((out / "reranker_metrics.json").read_text())["reports"]
    assert set(reports) == {"retrieval", "before", "after"}
