"""What a training run reports: the validation scores per epoch, as metrics.json and curves."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from eedi_utils.config import KitConfig
from eedi_utils.metrics import lb_key, map_key, score_report
from eedi_utils.prior import UnseenPrior
from eedi_utils.retrieval import encode, fused_top_k
from eedi_utils.train.data import TrainingData
from eedi_utils.train.plots import plot_training

METRICS_FILE = "metrics.json"
CURVES_FILE = "training_curves.png"

logger = logging.getLogger(__name__)


def validation_embeddings(
    model: SentenceTransformer, data: TrainingData, config: KitConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation queries' and the documents' embeddings by `model`."""
    queries = encode(model, data.val_queries, config.retrieval)
    return queries, encode(model, data.documents, config.retrieval)


def score_embeddings(
    queries: torch.Tensor,
    documents: torch.Tensor,
    data: TrainingData,
    config: KitConfig,
    bonus: np.ndarray | None = None,
) -> dict:
    """MAP@k and recall@k (k = [retrieval] top_k), seen, unseen and the leaderboard estimate
    of the validation rows ranked by these embeddings (plus `bonus` per document)."""
    k = config.retrieval.top_k
    _, positions = fused_top_k([queries], [documents], k, bonus=bonus)
    ranked = data.document_ids[positions.numpy()]
    return score_report(ranked, data.val_gold, data.val_seen, k, config.evaluate.lb_unseen_share)


def score_model(model: SentenceTransformer, data: TrainingData, config: KitConfig) -> dict:
    """`score_embeddings` of the model's own embeddings, no prior."""
    return score_embeddings(*validation_embeddings(model, data, config), data, config)


def tune_unseen_prior(
    queries: torch.Tensor, documents: torch.Tensor, data: TrainingData, config: KitConfig
) -> tuple[UnseenPrior, list[dict]]:
    """The unseen-prior strength of `[train] unseen_prior_grid` with the best leaderboard
    estimate on the validation rows ranked by these embeddings (the smallest on ties), and the
    whole table: each row shows what the prior buys on unseen rows and costs on seen ones. The
    labelled ids are those of the rows the model trained on. When the estimate is missing (the
    validation rows are all seen or all unseen, so there is no trade to weigh) nothing is
    tuned: the strength is `[retrieval] unseen_prior`, else 0, as with no validation rows."""
    labelled = data.labelled_ids()
    key, estimate = map_key(config.retrieval.top_k), lb_key(config.retrieval.top_k)
    table = []
    for strength in config.train.unseen_prior_grid:
        bonus = UnseenPrior(strength, labelled).bonus(data.document_ids)
        report = score_embeddings(queries, documents, data, config, bonus)
        table.append(
            {
                "unseen_prior": strength,
                key: report[key],
                "seen": report["seen"][key],
                "unseen": report["unseen"][key],
                estimate: report[estimate],
            }
        )
    scored = [row for row in table if row[estimate] is not None]
    if not scored:
        strength = config.retrieval.unseen_prior or 0.0
        logger.warning(
            "%s is missing (validation rows: %d seen, %d unseen): the unseen prior is not "
            "tuned, %s is stored",
            estimate,
            int(data.val_seen.sum()),
            int((~data.val_seen).sum()),
            strength,
        )
        return UnseenPrior(strength, labelled), table
    best = max(scored, key=lambda row: row[estimate])  # max keeps the first of equals
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
