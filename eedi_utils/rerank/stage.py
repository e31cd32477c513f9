"""Run the LLM stage (hypotheses or a rerank), in this process or in a child process.

On Kaggle's T4s the child process matters: the embedding model's GPU memory is only fully
given back when its process ends, and the LLM needs all of it. The child reads its job from a
pickle written by the parent (same code, same environment) and writes its result beside it:

    python -m eedi_utils.rerank.stage JOB.pkl RESULT.pkl
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from eedi_utils.config import RerankConfig
from eedi_utils.extras import require
from eedi_utils.inputs import resolve_input_path
from eedi_utils.rerank.backends import LLMBackend, TransformersBackend
from eedi_utils.rerank.scoring import hypotheses, rerank


def backend_name(config: RerankConfig) -> str:
    if config.backend == "auto":
        return "vllm" if torch.cuda.is_available() else "transformers"
    return config.backend


def load_backend(config: RerankConfig) -> LLMBackend:
    """The configured backend on the configured model folder (looked up on Kaggle by name)."""
    if not config.model:
        raise ValueError("[rerank] model is empty: name a causal LM folder")
    path = resolve_input_path(config.model)
    if backend_name(config) == "vllm":
        require("vllm", "[rerank] backend 'vllm' (or set backend = 'transformers')")
        from eedi_utils.rerank.vllm import VllmBackend

        return VllmBackend(path, config)
    return TransformersBackend(path, config)


@dataclass(frozen=True)
class Job:
    """One LLM task: 'hypothesis' (one sentence per row) or 'rerank' (`ranked` reordered)."""

    task: str
    long: pd.DataFrame
    ranked: np.ndarray | None
    misconceptions: pd.DataFrame
    config: RerankConfig

    def run_here(self) -> Any:
        backend = load_backend(self.config)
        if self.task == "hypothesis":
            return hypotheses(self.long, backend, self.config)
        return rerank(self.long, self.ranked, self.misconceptions, backend, self.config)


def run(job: Job) -> Any:
    """The job's result, computed in a child process when [rerank] separate_process is set."""
    if not job.config.separate_process:
        return job.run_here()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    with tempfile.TemporaryDirectory(prefix="eedi-llm-") as folder:
        job_file, result = Path(folder) / "job.pkl", Path(folder) / "result.pkl"
        job_file.write_bytes(pickle.dumps(job))
        child = subprocess.run(
            [sys.executable, "-m", "eedi_utils.rerank.stage", str(job_file), str(result)],
            capture_output=True,
            text=True,
        )
        if child.returncode != 0:
            raise RuntimeError(f"the LLM stage ({job.task}) failed:\n{child.stderr[-4000:]}")
        return pickle.loads(result.read_bytes())


def main(job_file: str, result: str) -> None:
    job: Job = pickle.loads(Path(job_file).read_bytes())
    Path(result).write_bytes(pickle.dumps(job.run_here()))


if __name__ == "__main__":
    main(*sys.argv[1:3])
