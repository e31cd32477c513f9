"""Fine-tuning on the real train set: zero-shot vs fine-tuned MAP@25 (seen/unseen), the
hard-negative ablation, wall time, and the kit's overhead over a bare sentence-transformers run.

    python benchmarks/train.py --variant remine        # the default config
    python benchmarks/train.py --variant once          # negatives mined once, before training
    python benchmarks/train.py --variant none          # in-batch negatives only
    python benchmarks/train.py --variant bare          # bare sentence-transformers script, same
                                                       # steps as `once` (for the time ratio)
Each prints one JSON object; the validation fold is [evaluate] fold 0, grouped by [evaluate]
group_by (ConstructId by default; the figures of this script in docs/benchmarks.md were
measured on the question-grouped fold of the time: `--config` with group_by = "QuestionId"
reproduces them).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from datasets import Dataset
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.sentence_transformer.training_args import BatchSamplers

from eedi_utils.config import load_config
from eedi_utils.data import CompetitionData
from eedi_utils.embedder import encode
from eedi_utils.metrics import map_key
from eedi_utils.train.retriever.data import prepare_data
from eedi_utils.train.retriever.mining import mine_negatives
from eedi_utils.train.retriever.model import build_model
from eedi_utils.train.retriever.report import score_model
from eedi_utils.train.retriever.run import RetrieverTraining

REPO = Path(__file__).resolve().parents[1]


def bare_run(data: CompetitionData, config) -> dict:
    """Mine once, then one SentenceTransformerTrainer.train() over all epochs, no extras."""
    cfg = config.train
    prepared = prepare_data(data, config)
    model = build_model(cfg, config.retrieval.max_seq_length, "cpu")
    started = time.perf_counter()
    first, last = cfg.negative_ranges[0]
    negatives = mine_negatives(
        encode(model, prepared.queries, config.retrieval),
        encode(model, prepared.documents, config.retrieval),
        prepared.document_ids,
        prepared.gold,
        cfg.n_negatives,
        (first, last),
        seed=cfg.seed,
    )
    mining = time.perf_counter() - started
    columns = {"anchor": prepared.queries, "positive": prepared.positives(prepared.documents)}
    for i in range(cfg.n_negatives):
        columns[f"negative_{i + 1}"] = [prepared.documents[p] for p in negatives[:, i]]
    with tempfile.TemporaryDirectory() as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out,
            num_train_epochs=cfg.epochs,
            per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            warmup_steps=cfg.warmup_ratio,
            weight_decay=cfg.weight_decay,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="epoch",
            save_total_limit=2,
            logging_steps=10,
            seed=cfg.seed,
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_dict(columns),
            loss=MultipleNegativesRankingLoss(model, scale=cfg.scale),
        )
        started = time.perf_counter()
        trainer.train()
        training = time.perf_counter() - started
    report = score_model(model, prepared, config)
    return {"seconds": {"mining": round(mining, 1), "training": round(training, 1)}, **report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["remine", "once", "none", "bare"], default="remine")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "eedi")
    parser.add_argument("--config", help="TOML config (default: the kit's defaults)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument(
        "--output-dir", type=Path, help="keep the model here (default: temp); clears an old run"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    config = load_config(args.config)
    config.retrieval.show_progress = False
    if args.epochs:
        config.train.epochs = args.epochs
    if args.variant == "once":
        config.train.remine_every = 0
    elif args.variant == "none":
        config.train.n_negatives = 0
    data = CompetitionData(args.data_dir)

    key = map_key(config.retrieval.top_k)
    started = time.perf_counter()
    if args.variant == "bare":
        config.train.remine_every = 0
        result = bare_run(data, config)
    else:
        with tempfile.TemporaryDirectory() as temporary:
            trainer = RetrieverTraining(data, args.output_dir or temporary, config)
            trainer.run(overwrite=True)  # an earlier run in --output-dir is cleared
        result = {
            "seconds": {k: round(v, 1) for k, v in trainer.seconds.items()},
            "mining_rounds": trainer.mining_calls,
            "zero_shot": {k: trainer.history[0][k] for k in (key, "seen", "unseen", "scored")},
            f"per_epoch_{key}": [h[key] for h in trainer.history],
            **trainer.history[-1],
        }
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(
        json.dumps(
            {
                "variant": args.variant,
                "epochs": config.train.epochs,
                "train": config.to_dict()["train"],
                **result,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
