"""Where the seconds of one CPU ranking go, in a fresh process: start-up (importing the kit's
ranking path), reading the data and writing the texts, loading the model, tokenising, the
model's forward passes, and the top-k with scoring. Prints one JSON object; also lists which
heavy libraries the run imported (an export should import neither torch nor transformers).
Tokenising is timed in a pass of its own and the forward passes are the encoding's time less
that pass: an export tokenises while its streams run, so only their sum is exact there.

    python benchmarks/cpu_stages.py MODEL [--dtype auto] [--fold 0]

`benchmarks/cpu_speed.py` runs it for every row it measures.
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from eedi_utils import pipeline  # noqa: E402

IMPORTED = time.perf_counter()

from eedi_utils.config import KitConfig  # noqa: E402
from eedi_utils.cpu_embedder import CpuEmbedder  # noqa: E402
from eedi_utils.data import CompetitionData, labelled  # noqa: E402
from eedi_utils.embedder import encode, load_embedder  # noqa: E402
from eedi_utils.metrics import lb_key, score_report  # noqa: E402
from eedi_utils.retrieval import fused_top_k  # noqa: E402
from eedi_utils.splits import config_folds  # noqa: E402
from eedi_utils.text import misconception_texts, query_texts  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "scipy")


def tokenise(model, texts: list[str], batch_size: int) -> None:
    """Tokenise `texts` in length-sorted batches as the model's encode does (an export splits
    each batch over its streams), and nothing else."""
    ordered = sorted(texts, key=len, reverse=True)
    if isinstance(model, CpuEmbedder):
        batch_size = model.share(batch_size)
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        if isinstance(model, CpuEmbedder):
            model.tokenizer.encode_batch(batch)
        else:
            model.preprocess(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--fold", type=int, default=0, help="for a model that held none out")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "eedi")
    args = parser.parse_args()
    seconds = {"start_up": IMPORTED - STARTED}

    started = time.perf_counter()
    config = KitConfig()
    config.retrieval.dtype, config.retrieval.device = args.dtype, "cpu"
    config.retrieval.show_progress = False
    held = pipeline.held_out_fold([args.model], config)
    held.apply(config)
    fold = held.fold if held.fine_tuned else args.fold
    data = CompetitionData(args.data_dir)
    train = labelled(data.train())
    chosen = config_folds(train, config.evaluate)[fold]
    queries = query_texts(train.iloc[chosen.val_rows], config.text)
    documents = misconception_texts(data.misconceptions, config.text)
    seconds["data_and_texts"] = time.perf_counter() - started

    started = time.perf_counter()
    model = load_embedder(args.model, config.retrieval)
    seconds["load"] = time.perf_counter() - started
    started = time.perf_counter()
    tokenise(model, queries + documents, config.retrieval.batch_size)
    seconds["tokenise"] = time.perf_counter() - started
    started = time.perf_counter()
    query_embeddings = encode(model, queries, config.retrieval)
    document_embeddings = encode(model, documents, config.retrieval)
    seconds["forward"] = time.perf_counter() - started - seconds["tokenise"]

    started = time.perf_counter()
    ids = data.misconceptions["MisconceptionId"].to_numpy()
    prior = pipeline.unseen_prior([args.model], config, chosen.seen_ids)
    _, positions = fused_top_k(
        [query_embeddings], [document_embeddings], config.retrieval.top_k,
        bonus=prior.bonus(ids) if prior else None,
    )  # fmt: skip
    gold = train["MisconceptionId"].to_numpy()[chosen.val_rows]
    report = score_report(
        ids[positions], gold, chosen.seen_mask(gold), config.retrieval.top_k,
        config.evaluate.lb_unseen_share,
    )  # fmt: skip
    seconds["rank_and_score"] = time.perf_counter() - started
    seconds["total"] = time.perf_counter() - STARTED
    print(json.dumps({
        "model": str(args.model), "dtype": args.dtype, "fold": fold, "texts": len(queries) +
        len(documents), **{f"{k}_s": round(v, 2) for k, v in seconds.items()},
        lb_key(): report[lb_key()], "imported": [m for m in HEAVY if m in sys.modules],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
