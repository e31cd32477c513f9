"""Question-grouped folds: deterministic, disjoint, covering, with honest unseen shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eedi_utils.data import CompetitionData, labelled
from eedi_utils.splits import grouped_folds


def test_folds_partition_rows_and_keep_questions_together(sample) -> None:
    train = labelled(CompetitionData(sample).train())
    folds = grouped_folds(train, 4, seed=1)
    all_val = np.concatenate([f.val_rows for f in folds])
    assert sorted(all_val.tolist()) == list(range(len(train)))
    for fold in folds:
        assert not set(fold.train_rows) & set(fold.val_rows)
        val_questions = set(train["QuestionId"].iloc[fold.val_rows])
        assert not val_questions & set(train["QuestionId"].iloc[fold.train_rows])


def test_folds_are_deterministic_and_seed_dependent(sample) -> None:
    train = labelled(CompetitionData(sample).train())
    first = [f.val_rows.tolist() for f in grouped_folds(train, 3, seed=7)]
    again = [f.val_rows.tolist() for f in grouped_folds(train, 3, seed=7)]
    other = [f.val_rows.tolist() for f in grouped_folds(train, 3, seed=8)]
    assert first == again and first != other


def test_unseen_share_on_hand_made_table() -> None:
    table = pd.DataFrame(
        {
            "QuestionId": [0, 0, 1, 1, 2],
            "MisconceptionId": pd.array([10, 11, 10, 12, 13], dtype="Int64"),
        }
    )
    folds = grouped_folds(table, 3, seed=0)
    for fold in folds:
        val = table.iloc[fold.val_rows]
        train_ids = set(table["MisconceptionId"].iloc[fold.train_rows])
        expected = np.mean([m not in train_ids for m in val["MisconceptionId"]])
        assert fold.unseen_share == pytest.approx(expected)
        assert fold.seen_ids == frozenset(train_ids)
        assert fold.seen_mask(val["MisconceptionId"].to_numpy(np.int64)).tolist() == [
            m in train_ids for m in val["MisconceptionId"]
        ]


def test_fold_count_is_checked(sample) -> None:
    train = labelled(CompetitionData(sample).train())
    with pytest.raises(ValueError, match="n_folds must be between 2"):
        grouped_folds(train, 1)


def test_real_data_folds_report_a_large_unseen_share(real_data) -> None:
    train = labelled(CompetitionData(real_data).train())
    folds = grouped_folds(train, 5)
    shares = [f.unseen_share for f in folds]
    assert all(0.1 < share < 0.5 for share in shares), shares


def test_construct_grouping_keeps_constructs_together_and_raises_the_unseen_share(
    sample,
) -> None:
    train = labelled(CompetitionData(sample).train())
    by_construct = grouped_folds(train, 3, seed=1, group_by="ConstructId")
    for fold in by_construct:
        val = set(train["ConstructId"].iloc[fold.val_rows])
        assert not val & set(train["ConstructId"].iloc[fold.train_rows])
    with pytest.raises(ValueError, match="group_by must be one of"):
        grouped_folds(train, 3, group_by="Answer")


def test_real_data_unseen_share_by_grouping(real_data) -> None:
    """docs/competition.md: about 0.26 by question, 0.43 by construct, 0.58 by subject."""
    train = labelled(CompetitionData(real_data).train())
    shares = {
        group: np.mean([f.unseen_share for f in grouped_folds(train, 5, group_by=group)])
        for group in ("QuestionId", "ConstructId", "SubjectId")
    }
    assert shares["QuestionId"] < shares["ConstructId"] < shares["SubjectId"]
    assert 0.38 <= shares["ConstructId"] <= 0.48
