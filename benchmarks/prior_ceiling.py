"""How much of the fine-tuned model the unseen prior leaves on the table: for the fold models a
`benchmarks/cv.py` run trained, the cross-fitted prior's row beside the oracle split, where
each seen row is ranked among the ids the training side labels only and each unseen row among
the others only. The oracle bounds every prior that moves one kind of id against the other
while keeping each kind's own order, a per-row one included: the gap is what a better guess of
"is this row's misconception seen?" could still buy; the oracle's sides rise only with a
better ranking within each kind (a better model, a prior per misconception, a reranker).

    python benchmarks/prior_ceiling.py --trained /tmp/eedi-cv/default-amx   # its fold-0, fold-1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from cv import REPO, cross_fitted_row, mean_rows, print_rows, prior_rankings

from eedi_utils.config import KitConfig, load_config
from eedi_utils.data import CompetitionData
from eedi_utils.embedder import load_embedder
from eedi_utils.provenance import read_provenance, read_resolved_config
from eedi_utils.train.retriever.data import TrainingData, prepare_data
from eedi_utils.train.retriever.report import (
    rank_embeddings,
    score_ranking,
    table_row,
    validation_embeddings,
)

EXCLUDED = -1e4
"""Added to the score of an id of the other kind: below any cosine similarity."""


def oracle_ranking(
    queries: np.ndarray, documents: np.ndarray, rows: TrainingData, config: KitConfig
) -> np.ndarray:
    """Each validation row ranked among the ids of its own gold's kind (labelled or not)."""
    labelled = np.isin(rows.document_ids, list(rows.labelled_ids()))
    ranking = np.zeros((len(queries), config.retrieval.top_k), dtype=rows.document_ids.dtype)
    for seen in (True, False):
        mask = rows.val_seen.astype(bool) == seen
        bonus = np.where(labelled == seen, 0.0, EXCLUDED).astype(np.float32)
        ranking[mask] = rank_embeddings(queries[mask], documents, rows, config, bonus)
    return ranking


def fold_rows(trained: Path, fold: int, data: CompetitionData) -> list[dict]:
    """The cross-fitted prior's row and the oracle's of the model `trained` held `fold` out
    for, with the query text, folds and seed (the cross-fitting halves) it was trained with."""
    folder = trained / f"fold-{fold}"
    provenance = read_provenance(folder)
    if provenance.trained_on != "fold" or provenance.val_fold != fold:
        raise SystemExit(f"{folder}: not a run that held out fold {fold}: {provenance.detail}")
    recorded = read_resolved_config(folder)
    sections = ("text", "evaluate", "train")  # None is a setting left unset: not an override
    config = load_config(
        None, {s: {k: v for k, v in recorded[s].items() if v is not None} for s in sections}
    )
    config.retrieval.show_progress = False
    for key in ("max_seq_length", "top_k", "batch_size"):  # what ranks and pads as it did
        setattr(config.retrieval, key, recorded["retrieval"][key])
    rows = prepare_data(data, config)
    model = load_embedder(str(folder), config.retrieval)
    queries, documents = validation_embeddings(model, rows, config)
    priored = prior_rankings((queries, documents), rows, config, 1.0)
    oracle = score_ranking(oracle_ranking(queries, documents, rows, config), rows, config)
    found = [
        cross_fitted_row("+ unseen prior, cross-fitted", priored, rows, config, [1.0]),
        table_row({"row": "oracle seen/unseen split"}, oracle, config),
    ]
    extra = {"fold": fold, "unseen_share": oracle["unseen_share"], "wall_minutes": None}
    return [{**r, **extra} for r in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trained", type=Path, required=True, help="a cv.py VARIANT folder")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "eedi")
    args = parser.parse_args()
    data = CompetitionData(args.data_dir)
    rows = [r for fold in args.folds for r in fold_rows(args.trained, fold, data)]
    rows += mean_rows(rows, str(args.trained), args.folds)
    print_rows(rows)
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
