"""Zero-shot retrieval on the real train set: quality, speed, and the kit's overhead.

Prints MAP@25 and recall@25 of the default model over every labelled train row (with the
seen/unseen split of a 5-fold question-grouped CV), queries per second, and the ratio of the
kit's encoding time to a bare `SentenceTransformer.encode` of the same texts.

    python benchmarks/retrieval.py [--data-dir ../shared/data/eedi] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

from eedi_utils.config import KitConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.devices import resolve_device, resolve_dtype
from eedi_utils.embedder import default_model_path, encode, load_embedder
from eedi_utils.metrics import score_report
from eedi_utils.retrieval import fused_top_k
from eedi_utils.splits import config_folds
from eedi_utils.text import misconception_texts, query_texts

REPO = Path(__file__).resolve().parents[1]


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=REPO.parent / "shared" / "data" / "eedi", type=Path)
    parser.add_argument("--model", default=None, help="model folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--max-seq-length", type=int, default=None)
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default auto)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each encoder")
    args = parser.parse_args()

    config = KitConfig()
    config.retrieval.show_progress = False
    if args.max_seq_length:
        config.retrieval.max_seq_length = args.max_seq_length
    if args.dtype:
        config.retrieval.dtype = args.dtype
    data = CompetitionData(args.data_dir)
    train = labelled(data.train())
    queries = query_texts(train, config.text)
    documents = misconception_texts(data.misconceptions, config.text)

    model = load_embedder(args.model, config.retrieval)
    device = resolve_device(config.retrieval.device)
    dtype = resolve_dtype(config.retrieval.dtype, device)
    bare = SentenceTransformer(
        str(args.model or default_model_path()),
        device=device,
        local_files_only=True,
        model_kwargs={"dtype": dtype},
    )
    bare.max_seq_length = config.retrieval.max_seq_length

    kit_times, bare_times = [], []
    for _ in range(args.repeats):
        _, seconds = timed(
            lambda: bare.encode(
                queries,
                batch_size=config.retrieval.batch_size,
                normalize_embeddings=True,
                convert_to_tensor=True,
            )
        )
        bare_times.append(seconds)
        query_embeddings, seconds = timed(lambda: encode(model, queries, config.retrieval))
        kit_times.append(seconds)

    document_embeddings, document_seconds = timed(
        lambda: encode(model, documents, config.retrieval)
    )
    (_, positions), search_seconds = timed(
        lambda: fused_top_k([query_embeddings], [document_embeddings], config.retrieval.top_k)
    )
    ranked = data.misconceptions["MisconceptionId"].to_numpy()[positions]
    gold = train["MisconceptionId"].to_numpy(np.int64)
    seen = np.zeros(len(train), dtype=bool)
    for fold in config_folds(train, config.evaluate):
        seen[fold.val_rows] = fold.seen_mask(gold[fold.val_rows])
    report = score_report(ranked, gold, seen)

    kit_seconds, bare_seconds = min(kit_times), min(bare_times)
    print(
        json.dumps(
            {
                "model": str(args.model or "all-MiniLM-L6-v2 (bundled)"),
                "device": device,
                "dtype": str(dtype).removeprefix("torch."),
                "max_seq_length": config.retrieval.max_seq_length,
                "queries": len(queries),
                "misconceptions": len(documents),
                **report,
                "seen_unseen_from": f"{config.evaluate.folds}-fold question-grouped CV",
                "query_encode_seconds_kit": round(kit_seconds, 2),
                "query_encode_seconds_bare": round(bare_seconds, 2),
                "kit_over_bare_ratio": round(kit_seconds / bare_seconds, 3),
                "queries_per_second": round(len(queries) / kit_seconds, 1),
                "misconception_encode_seconds": round(document_seconds, 2),
                "top_k_search_seconds": round(search_seconds, 3),
                "end_to_end_queries_per_second": round(
                    len(queries) / (kit_seconds + document_seconds + search_seconds), 1
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
