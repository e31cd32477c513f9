"""Deterministic cross-validation folds grouped by QuestionId, with seen/unseen labelling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


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


def question_folds(long: pd.DataFrame, n_folds: int, seed: int = 42) -> list[Fold]:
    """Split a labelled long table into `n_folds` folds; all answers of a question stay together.

    The same table, fold count and seed always give the same folds.
    """
    questions = np.sort(long["QuestionId"].unique())
    if not 2 <= n_folds <= len(questions):
        raise ValueError(
            f"n_folds must be between 2 and {len(questions)} (questions), got {n_folds}"
        )
    shuffled = np.random.default_rng(seed).permutation(questions)
    fold_of_question = dict(zip(shuffled.tolist(), (np.arange(len(shuffled)) % n_folds).tolist()))
    fold_of_row = long["QuestionId"].map(fold_of_question).to_numpy()
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
