"""The LLM stage's cost: CPU latency per row with SmolLM2-135M-Instruct, and a worked estimate
of the full pipeline on Kaggle's T4 x2 for the hidden test.

Takes ROWS labelled train rows, retrieves their top 25 with the default embedder, then times
the hypothesis, a listwise rerank (the default windows, with the reversed pass) and a pointwise
rerank with the transformers backend on this CPU, printing seconds per row, prompt tokens per
row, and MAP@25 before and after (SmolLM2 is a plumbing model: its MAP says nothing).
The estimate scales the measured prompt tokens per row to ~3 wrong answers x ~1,000 hidden
questions against assumed prefill/decode throughputs of AWQ models on two T4s (arguments).

    python benchmarks/rerank.py [--rows 20] [--model FOLDER]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from retrieval import timed  # benchmarks/retrieval.py, beside this script

from eedi_utils import pipeline
from eedi_utils.config import KitConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.metrics import map_at_k
from eedi_utils.rerank.backends import TransformersBackend, chat_ids, smollm2_folder
from eedi_utils.rerank.scoring import hypotheses, hypothesis_messages, listwise_messages, rerank

REPO = Path(__file__).resolve().parents[1]
HIDDEN_ROWS = 3 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=REPO.parent / "shared" / "data" / "eedi", type=Path)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--model", type=Path, help="causal LM folder (default: SmolLM2 GGUF)")
    parser.add_argument("--prefill-14b", type=float, default=1500.0, help="tokens/s, T4 x2")
    parser.add_argument("--prefill-32b", type=float, default=600.0, help="tokens/s, T4 x2")
    parser.add_argument("--decode-14b", type=float, default=300.0, help="tokens/s batched")
    parser.add_argument("--decode-32b", type=float, default=120.0, help="tokens/s batched")
    args = parser.parse_args()

    config = KitConfig()
    config.retrieval.show_progress = False
    data = CompetitionData(args.data_dir)
    rows = labelled(data.train()).sample(args.rows, random_state=0).reset_index(drop=True)
    gold = rows["MisconceptionId"].to_numpy(np.int64)
    ranked = pipeline.rank_misconceptions(rows, data, None, config)

    with tempfile.TemporaryDirectory() as folder:
        model = args.model or smollm2_folder(Path(folder) / "smollm2")
        config.rerank.model = str(model)
        backend = TransformersBackend(model, config.rerank, "cpu")
        names = data.misconceptions.set_index("MisconceptionId")["MisconceptionName"]
        listwise_tokens = np.mean(
            [
                len(chat_ids(backend.tokenizer, listwise_messages(row, list(names[ids[:10]]))))
                for (_, row), ids in zip(rows.iterrows(), ranked)
            ]
        )
        hypothesis_tokens = np.mean(
            [len(chat_ids(backend.tokenizer, hypothesis_messages(r))) for _, r in rows.iterrows()]
        )
        _, hypothesis_s = timed(lambda: hypotheses(rows, backend, config.rerank))
        listwise, listwise_s = timed(
            lambda: rerank(rows, ranked, data.misconceptions, backend, config.rerank)
        )
        config.rerank.mode = "pointwise"
        pointwise, pointwise_s = timed(
            lambda: rerank(rows, ranked, data.misconceptions, backend, config.rerank)
        )

    windows, passes = len(config.rerank.windows), 2 if config.rerank.reverse_pass else 1
    prompts_per_row = windows * passes
    prefill_tokens = HIDDEN_ROWS * (prompts_per_row * listwise_tokens + hypothesis_tokens)
    decode_tokens = HIDDEN_ROWS * config.rerank.hypothesis_tokens
    estimate = {
        size: round((prefill_tokens / prefill + decode_tokens / decode) / 3600, 2)
        for size, prefill, decode in (
            ("14b_awq_hours", args.prefill_14b, args.decode_14b),
            ("32b_awq_hours", args.prefill_32b, args.decode_32b),
        )
    }
    print(
        json.dumps(
            {
                "rows": args.rows,
                "cpu_seconds_per_row": {
                    "hypothesis": round(hypothesis_s / args.rows, 2),
                    f"listwise_{windows}_windows_x{passes}": round(listwise_s / args.rows, 2),
                    "pointwise": round(pointwise_s / args.rows, 2),
                },
                "prompt_tokens": {
                    "listwise_window_10": round(float(listwise_tokens)),
                    "hypothesis": round(float(hypothesis_tokens)),
                },
                "map@25": {
                    "retrieval": round(map_at_k(ranked, gold), 4),
                    "listwise": round(map_at_k(listwise, gold), 4),
                    "pointwise": round(map_at_k(pointwise, gold), 4),
                },
                "hidden_test_estimate": {
                    "rows": HIDDEN_ROWS,
                    "prefill_tokens": int(prefill_tokens),
                    "decode_tokens": decode_tokens,
                    **estimate,
                    "limit_hours": 9,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
