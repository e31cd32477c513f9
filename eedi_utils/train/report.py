"""What a training run reports: the validation scores per epoch, as metrics.json and curves."""

from __future__ import annotations

import json
from pathlib import Path

from sentence_transformers import SentenceTransformer

from eedi_utils.config import KitConfig
from eedi_utils.metrics import lb_key, map_key, score_report
from eedi_utils.prior import UnseenPrior
from eedi_utils.retrieval import encode, fused_top_k
from eedi_utils.train.data import TrainingData
from eedi_utils.train.plots import plot_training

METRICS_FILE = "metrics.json"
CURVES_FILE = "training_curves.png"


def score_model(model: SentenceTransformer, data: TrainingData, config: KitConfig) -> dict:
    """MAP@k and recall@k (k = [retrieval] top_k), seen, unseen and the leaderboard estimate,
    on the validation rows."""
    queries = encode(model, data.val_queries, config.retrieval)
    documents = encode(model, data.documents, config.retrieval)
    _, positions = fused_top_k([queries], [documents], config.retrieval.top_k)
    ranked = data.document_ids[positions.numpy()]
    k, u = config.retrieval.top_k, config.evaluate.lb_unseen_share
    return score_report(ranked, data.val_gold, data.val_seen, k, u)


def tune_unseen_prior(
    model: SentenceTransformer, data: TrainingData, config: KitConfig
) -> tuple[UnseenPrior, list[dict]]:
    """The unseen-prior strength of `[train] unseen_prior_grid` with the best leaderboard
    estimate on the validation rows (the smallest on ties), and the whole table: each row
    shows what the prior buys on unseen rows and costs on seen ones. The labelled ids are
    those of the rows the model trained on."""
    labelled = frozenset(int(g) for g in data.gold)
    queries = encode(model, data.val_queries, config.retrieval)
    documents = encode(model, data.documents, config.retrieval)
    k, u = config.retrieval.top_k, config.evaluate.lb_unseen_share
    table = []
    for strength in config.train.unseen_prior_grid:
        bonus = UnseenPrior(strength, labelled).bonus(data.document_ids)
        _, positions = fused_top_k([queries], [documents], k, bonus=bonus)
        report = score_report(
            data.document_ids[positions.numpy()], data.val_gold, data.val_seen, k, u
        )
        table.append(
            {
                "unseen_prior": strength,
                map_key(k): report[map_key(k)],
                "seen": report["seen"][map_key(k)],
                "unseen": report["unseen"][map_key(k)],
                lb_key(k): report[lb_key(k)],
            }
        )
    best = max(table, key=lambda row: row[lb_key(k)])  # max keeps the first of equals
    return UnseenPrior(best["unseen_prior"], labelled), table


def read_history(output_dir: Path) -> list[dict]:
    """The per-epoch reports written so far, [] when none."""
    path = output_dir / METRICS_FILE
    return json.loads(path.read_text()) if path.exists() else []


def write_history(history: list[dict], output_dir: Path, top_k: int) -> None:
    """metrics.json, and the curves PNG once there is an epoch to draw."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / METRICS_FILE).write_text(json.dumps(history, indent=2))
    if history:
        plot_training(history, output_dir / CURVES_FILE, top_k)
