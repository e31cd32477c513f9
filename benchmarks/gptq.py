"""4-bit GPTQ on this CPU: how long AutoRound takes to quantise SmolLM2-135M-Instruct
(calibrated on listwise prompts of real train rows), and what the quantised folder costs in
the transformers backend: seconds per prompt and agreement with the fp32 model on ROWS listwise
prompts (10 retrieved candidates each), computed in bf16 (the kit's choice for GPTQ on a CPU)
and, on the first FP16_ROWS of them, in fp16 (AutoRound's own default). SmolLM2 is a plumbing
model: the agreement says what 4 bits change, not how well it reranks.

    python benchmarks/gptq.py [--rows 24] [--fp16-rows 8] [--iters 0] [--group-size 64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from eedi_utils import pipeline
from eedi_utils.config import KitConfig, RerankConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.rerank.backends import (
    TransformersBackend,
    chat_ids,
    single_token_ids,
    smollm2_folder,
)
from eedi_utils.rerank.prompts import LABELS, listwise_messages
from eedi_utils.train.reranker.quantize import calibration_windows, quantize_gptq

REPO = Path(__file__).resolve().parents[1]


def score(folder: Path, dtype: str, prompts: list[list[int]], labels: list[int]):
    """Letter log-probabilities of every prompt, and seconds per prompt (after loading)."""
    backend = TransformersBackend(folder, RerankConfig(dtype=dtype, batch_size=8), "cpu")
    started = time.perf_counter()
    scores = backend.choice_logprobs(prompts, labels)
    return scores, (time.perf_counter() - started) / len(prompts), str(backend.model.dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=REPO.parent / "shared" / "data" / "eedi", type=Path)
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--fp16-rows", type=int, default=8, help="fp16 is slow on a CPU")
    parser.add_argument("--iters", type=int, default=0, help="AutoRound iterations; 0: RTN")
    parser.add_argument("--group-size", type=int, default=64, help="SmolLM2's 576 is not /128")
    args = parser.parse_args()
    torch.manual_seed(0)
    data = CompetitionData(args.data_dir)
    rows = labelled(data.train()).sample(args.rows * 3, random_state=0).reset_index(drop=True)
    config = KitConfig()
    config.retrieval.show_progress = False
    ranked = pipeline.rank_misconceptions(rows, data, None, config)[:, :10]
    names = dict(
        zip(data.misconceptions["MisconceptionId"], data.misconceptions["MisconceptionName"])
    )
    with tempfile.TemporaryDirectory() as work:
        model = smollm2_folder(Path(work) / "smollm2")
        tokenizer = AutoTokenizer.from_pretrained(str(model))
        prompts = [
            chat_ids(tokenizer, listwise_messages(row, [names[int(i)] for i in candidates]))
            for (_, row), candidates in zip(rows.iterrows(), ranked)
        ]
        calibration, scored = prompts[args.rows :], prompts[: args.rows]
        windows = calibration_windows(calibration, 512, 8, seed=0)
        started = time.perf_counter()
        gptq = quantize_gptq(model, Path(work) / "gptq", windows, 4, args.group_size, args.iters)
        quantise_s = time.perf_counter() - started
        labels = single_token_ids(tokenizer, list(LABELS[:10]))
        full, full_s, _ = score(model, "float32", scored, labels)
        report = {
            "rows": args.rows,
            "quantise_seconds": round(quantise_s, 1),
            "iters": args.iters,
            "group_size": args.group_size,
            "fp32_seconds_per_prompt": round(full_s, 3),
        }
        for dtype, count in (("bfloat16", args.rows), ("float16", args.fp16_rows)):
            scores, seconds, used = score(gptq, dtype, scored[:count], labels)
            report[f"gptq_{dtype}"] = {
                "prompts": count,
                "computed_in": used,
                "seconds_per_prompt": round(seconds, 3),
                "max_logprob_difference_to_fp32": round(
                    float(np.abs(scores - full[:count]).max()), 4
                ),
                "same_top_letter": round(
                    float((scores.argmax(1) == full[:count].argmax(1)).mean()), 3
                ),
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
