"""Deterministic cross-validation folds grouped by QuestionId, ConstructId or SubjectId, with
seen/unseen labelling.

Grouping by question alone leaves about a quarter of validation rows with a misconception
the training side never saw (real train: 0.26); the hidden test has far more (a top team's
probe: about 75%). Grouping by ConstructId (0.43) or SubjectId (0.58) is closer to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from eedi_utils.config import EvaluateConfig


@dataclass(frozen=True)
class Fold:
    """Row positions of one fold of a labelled long table, and what its training side knows."""

    index: int
    train_rows: np.ndarray
    val_rows: np.ndarray
    seen_ids: frozenset[int]
    unseen_share: float
    """Share of validation rows whose gold misconception never appears in the training rows."""

    def seen_mask(self, gold: np.ndarray) -> np.ndarray:
        """Per gold id: does it appear in this fold's training rows?"""
        return np.isin(np.asarray(gold, dtype=np.int64), np.fromiter(self.seen_ids, np.int64))


GROUPS = ("QuestionId", "ConstructId", "SubjectId")


def grouped_folds(
    long: pd.DataFrame, n_folds: int, seed: int = 42, group_by: str = "QuestionId"
) -> list[Fold]:
    """Split a labelled long table into `n_folds` folds; all rows of a group (a question, a
    construct or a subject) stay together, so a question never sits on both sides.

    The same table, fold count, seed and grouping always give the same folds.
    """
    if group_by not in GROUPS:
        raise ValueError(f"[evaluate] group_by must be one of {GROUPS}, got {group_by!r}")
    groups = np.sort(long[group_by].unique())
    if not 2 <= n_folds <= len(groups):
        raise ValueError(
            f"n_folds must be between 2 and {len(groups)} (groups of {group_by}), got {n_folds}"
        )
    shuffled = np.random.default_rng(seed).permutation(groups)
    fold_of_group = dict(zip(shuffled.tolist(), (np.arange(len(shuffled)) % n_folds).tolist()))
    fold_of_row = long[group_by].map(fold_of_group).to_numpy()
    labels = long["MisconceptionId"].to_numpy()

    folds = []
    for index in range(n_folds):
        train_rows = np.flatnonzero(fold_of_row != index)
        val_rows = np.flatnonzero(fold_of_row == index)
        seen = frozenset(int(x) for x in pd.unique(labels[train_rows]) if not pd.isna(x))
        val_labels = [int(x) for x in labels[val_rows] if not pd.isna(x)]
        unseen = sum(label not in seen for label in val_labels)
        share = unseen / len(val_labels) if val_labels else 0.0
        folds.append(Fold(index, train_rows, val_rows, seen, round(share, 4)))
    return folds


def config_folds(long: pd.DataFrame, config: EvaluateConfig) -> list[Fold]:
    """The folds `[evaluate]` describes (count, seed, grouping): the one split that evaluate,
    train's validation fold, the notebooks and the benchmarks share."""
    return grouped_folds(long, config.folds, config.seed, config.group_by)
