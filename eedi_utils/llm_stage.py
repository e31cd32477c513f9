"""Run the LLM stage (hypotheses or a rerank), in this process or in a child process.

On Kaggle's T4s the child process matters: the embedding model's GPU memory is only fully
given back when its process ends, and the LLM needs all of it. The child reads its job from a
pickle written by the parent (same code, same environment) and writes its result beside it:

    python -m eedi_utils.llm_stage JOB.pkl RESULT.pkl
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from eedi_utils.config import RerankConfig
from eedi_utils.kaggle_env import resolve_input_path
from eedi_utils.llm_backends import LLMBackend, TransformersBackend
from eedi_utils.rerank import hypotheses, rerank


def backend_name(config: RerankConfig) -> str:
    if config.backend == "auto":
        return "vllm" if torch.cuda.is_available() else "transformers"
    if config.backend not in ("vllm", "transformers"):
        raise ValueError(f"[rerank] backend must be auto, vllm or transformers: {config.backend!r}")
    return config.backend


def load_backend(config: RerankConfig) -> LLMBackend:
    """The configured backend on the configured model folder (looked up on Kaggle by name)."""
    if not config.model:
        raise ValueError("[rerank] model is empty: name a causal LM folder")
    path = resolve_input_path(config.model)
    if backend_name(config) == "vllm":
        from eedi_utils.llm_vllm import VllmBackend

        return VllmBackend(path, config)
    return TransformersBackend(path, config)


def run_here(
    task: str,
    long: pd.DataFrame,
    ranked: np.ndarray | None,
    misconceptions: pd.DataFrame,
    config: RerankConfig,
) -> Any:
    backend = load_backend(config)
    if task == "hypothesis":
        return hypotheses(long, backend, config)
    return rerank(long, ranked, misconceptions, backend, config)


def run(
    task: str,
    long: pd.DataFrame,
    ranked: np.ndarray | None,
    misconceptions: pd.DataFrame,
    config: RerankConfig,
) -> Any:
    """'hypothesis' -> one sentence per row; 'rerank' -> `ranked` with its windows reordered."""
    if not config.separate_process:
        return run_here(task, long, ranked, misconceptions, config)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    with tempfile.TemporaryDirectory(prefix="eedi-llm-") as folder:
        job, result = Path(folder) / "job.pkl", Path(folder) / "result.pkl"
        job.write_bytes(pickle.dumps((task, long, ranked, misconceptions, config)))
        child = subprocess.run(
            [sys.executable, "-m", "eedi_utils.llm_stage", str(job), str(result)],
            capture_output=True,
            text=True,
        )
        if child.returncode != 0:
            raise RuntimeError(f"the LLM stage ({task}) failed:\n{child.stderr[-4000:]}")
        return pickle.loads(result.read_bytes())


def main(job: str, result: str) -> None:
    task, long, ranked, misconceptions, config = pickle.loads(Path(job).read_bytes())
    Path(result).write_bytes(pickle.dumps(run_here(task, long, ranked, misconceptions, config)))


if __name__ == "__main__":
    main(*sys.argv[1:3])
