"""Build, validate and write `submission.csv`; nothing invalid is ever written."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

from eedi_utils.config import NUM_PREDICTIONS

HEADER = ["QuestionId_Answer", "MisconceptionId"]


class SubmissionError(ValueError):
    """A submission that Kaggle would reject or score wrongly; the message names the row."""


def build_submission(test_long: pd.DataFrame, predicted_ids: np.ndarray) -> pd.DataFrame:
    """One row per wrong answer of `test_long` with its ranked ids, space-separated."""
    if len(predicted_ids) != len(test_long):
        raise SubmissionError(f"{len(predicted_ids)} predictions for {len(test_long)} rows")
    return pd.DataFrame(
        {
            HEADER[0]: test_long["QuestionId_Answer"].to_list(),
            HEADER[1]: [" ".join(str(int(i)) for i in row) for row in predicted_ids],
        }
    )


def validate_submission(
    submission: pd.DataFrame,
    test_long: pd.DataFrame,
    misconception_ids: Collection[int],
    k: int = NUM_PREDICTIONS,
) -> None:
    """Raise SubmissionError unless every wrong answer has one row of k distinct known ids."""
    if list(submission.columns) != HEADER:
        raise SubmissionError(f"header must be {HEADER}, got {list(submission.columns)}")
    expected = set(test_long["QuestionId_Answer"])
    keys = submission[HEADER[0]].astype(str)
    duplicated = keys[keys.duplicated()]
    if not duplicated.empty:
        raise SubmissionError(f"row {duplicated.iloc[0]} appears more than once")
    missing = sorted(expected - set(keys))
    if missing:
        raise SubmissionError(f"{len(missing)} wrong answer(s) have no row, e.g. {missing[:3]}")
    extra = sorted(set(keys) - expected)
    if extra:
        raise SubmissionError(
            f"{len(extra)} row(s) are not wrong answers of test, e.g. {extra[:3]}"
        )
    known = set(misconception_ids)
    wanted = min(k, len(known))
    for key, value in zip(keys, submission[HEADER[1]].astype(str)):
        tokens = value.split()
        if not all(token.isdigit() for token in tokens):
            raise SubmissionError(f"row {key}: ids must be non-negative integers, got {value!r}")
        ids = [int(token) for token in tokens]
        if len(ids) != wanted:
            raise SubmissionError(f"row {key}: {len(ids)} ids, expected {wanted}")
        if len(set(ids)) != len(ids):
            raise SubmissionError(f"row {key}: repeated ids in {value!r}")
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise SubmissionError(f"row {key}: ids {unknown} are not in the misconception mapping")


def write_submission(
    submission: pd.DataFrame,
    path: str | Path,
    test_long: pd.DataFrame,
    misconception_ids: Collection[int],
    k: int = NUM_PREDICTIONS,
) -> Path:
    """Validate, then write atomically (a failed run never leaves a half-written file)."""
    validate_submission(submission, test_long, misconception_ids, k)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    submission.to_csv(partial, index=False)
    os.replace(partial, path)
    return path


def read_submission(path: str | Path) -> pd.DataFrame:
    """Read a submission file as written (ids stay one space-separated string per row)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)
