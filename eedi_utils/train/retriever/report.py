"""What a training run reports: the validation scores per epoch, as metrics.json and curves."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eedi_utils.config import KitConfig
from eedi_utils.cross_fit import best_index, cross_fit, edge_note
from eedi_utils.embedder import Embedder, encode
from eedi_utils.metrics import lb_key, map_key, score_report
from eedi_utils.prior import UnseenPrior
from eedi_utils.retrieval import fused_top_k
from eedi_utils.train.retriever.data import TrainingData
from eedi_utils.train.retriever.plots import plot_training

METRICS_FILE = "metrics.json"
CURVES_FILE = "training_curves.png"

logger = logging.getLogger(__name__)


def validation_embeddings(
    model: Embedder, data: TrainingData, config: KitConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The validation queries' and the documents' embeddings by `model`."""
    queries = encode(model, data.val_queries, config.retrieval)
    return queries, encode(model, data.documents, config.retrieval)


def rank_embeddings(
    queries: np.ndarray,
    documents: np.ndarray,
    data: TrainingData,
    config: KitConfig,
    bonus: np.ndarray | None = None,
) -> np.ndarray:
    """The top-k misconception ids (k = [retrieval] top_k) of each validation row, ranked by
    these embeddings (plus `bonus` per document)."""
    _, positions = fused_top_k([queries], [documents], config.retrieval.top_k, bonus=bonus)
    return data.document_ids[positions]


def score_ranking(ranked: np.ndarray, data: TrainingData, config: KitConfig) -> dict:
    """MAP@k and recall@k, seen, unseen and the leaderboard estimate of validation rankings."""
    k, share = config.retrieval.top_k, config.evaluate.lb_unseen_share
    return score_report(ranked, data.val_gold, data.val_seen, k, share)


def score_embeddings(
    queries: np.ndarray,
    documents: np.ndarray,
    data: TrainingData,
    config: KitConfig,
    bonus: np.ndarray | None = None,
) -> dict:
    """`score_ranking` of the validation rows ranked by these embeddings (plus `bonus`)."""
    return score_ranking(rank_embeddings(queries, documents, data, config, bonus), data, config)


def score_model(model: Embedder, data: TrainingData, config: KitConfig) -> dict:
    """`score_embeddings` of the model's own embeddings, no prior."""
    return score_embeddings(*validation_embeddings(model, data, config), data, config)


def table_row(label: dict, report: dict, config: KitConfig) -> dict:
    """`label` followed by MAP@k, seen, unseen, the unseen share and map@k_lb of a report."""
    key, estimate = map_key(config.retrieval.top_k), lb_key(config.retrieval.top_k)
    return {
        **label,
        key: report[key],
        "seen": report["seen"][key],
        "unseen": report["unseen"][key],
        "unseen_share": report["unseen_share"],
        estimate: report[estimate],
    }


@dataclass(frozen=True)
class PriorTuning:
    """The prior to store (tuned on the whole validation fold), the table of every strength
    on that fold, the cross-fitted row (each half of the fold ranked with the strength chosen
    on the other half: the figure to report) and warnings (a pick at the grid's edge)."""

    prior: UnseenPrior
    table: list[dict]
    cross_fitted: dict | None
    notes: list[str]


def tune_unseen_prior(
    queries: np.ndarray, documents: np.ndarray, data: TrainingData, config: KitConfig
) -> PriorTuning:
    """The unseen-prior strength of `[train] unseen_prior_grid` with the best leaderboard
    estimate on the validation rows ranked by these embeddings (the smallest on ties), the
    whole table (what each strength buys on unseen rows and costs on seen ones), and the
    cross-fitted figure (`cross_fit`: no row scored by a strength chosen on it). The labelled
    ids are those of the rows the model trained on. When the estimate is missing (the
    validation rows are all seen or all unseen, so there is no trade to weigh) nothing is
    tuned: the strength is `[retrieval] unseen_prior`, else 0, as with no validation rows."""
    labelled = data.labelled_ids()
    estimate = lb_key(config.retrieval.top_k)
    grid = config.train.unseen_prior_grid
    rankings = [
        rank_embeddings(
            queries, documents, data, config, UnseenPrior(s, labelled).bonus(data.document_ids)
        )
        for s in grid
    ]
    table = [
        table_row({"unseen_prior": s}, score_ranking(r, data, config), config)
        for s, r in zip(grid, rankings)
    ]
    best = best_index([row[estimate] for row in table])
    if best is None:
        strength = config.retrieval.unseen_prior or 0.0
        note = (
            f"{estimate} is missing (validation rows: {int(data.val_seen.sum())} seen, "
            f"{int((~data.val_seen).sum())} unseen): the unseen prior is not tuned, "
            f"{strength} is stored"
        )
        logger.warning(note)
        return PriorTuning(UnseenPrior(strength, labelled), table, None, [note])
    notes = [n for n in [edge_note(grid, grid[best], "[train] unseen_prior_grid: the pick")] if n]
    for note in notes:
        logger.warning(note)
    k, share = config.retrieval.top_k, config.evaluate.lb_unseen_share
    fitted = cross_fit(
        rankings, data.val_gold, data.val_seen, data.val_groups, k, share, config.train.seed
    )
    cross_fitted = None
    if fitted is not None:
        picks = [grid[i] for i in fitted.picks]
        cross_fitted = table_row({"unseen_prior": f"cross-fitted {picks}"}, fitted.report, config)
    return PriorTuning(UnseenPrior(grid[best], labelled), table, cross_fitted, notes)


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
