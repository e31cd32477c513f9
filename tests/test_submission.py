"""The submission validator refuses everything Kaggle would reject or mis-score."""

from __future__ import annotations

import numpy as np
import pytest

from eedi_utils.data import CompetitionData
from eedi_utils.submission import (
    SubmissionError,
    build_submission,
    read_submission,
    validate_submission,
    write_submission,
)


@pytest.fixture()
def valid(sample):
    data = CompetitionData(sample)
    test = data.test()
    ids = data.misconceptions["MisconceptionId"].to_numpy()
    ranked = np.stack([np.roll(ids, i)[:25] for i in range(len(test))])
    return build_submission(test, ranked), test, set(ids.tolist())


def test_valid_submission_round_trips(valid, tmp_path) -> None:
    submission, test, ids = valid
    path = write_submission(submission, tmp_path / "out" / "submission.csv", test, ids)
    written = read_submission(path)
    assert list(written.columns) == ["QuestionId_Answer", "MisconceptionId"]
    assert written["QuestionId_Answer"].tolist() == test["QuestionId_Answer"].tolist()
    assert all(len(v.split()) == 25 for v in written["MisconceptionId"])
    validate_submission(written, test, ids)


def test_matches_sample_submission_rows(valid, sample) -> None:
    submission, _, _ = valid
    expected = read_submission(sample / "sample_submission.csv")
    assert submission["QuestionId_Answer"].tolist() == expected["QuestionId_Answer"].tolist()


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda s: s.rename(columns={"MisconceptionId": "Misconception"}), "header must be"),
        (lambda s: s.iloc[1:], "have no row"),
        (lambda s: s.iloc[[0, *range(len(s))]], "appears more than once"),
        (
            lambda s: s.assign(
                QuestionId_Answer=s["QuestionId_Answer"].replace({s.iloc[0, 0]: "1_A"})
            ),
            "have no row",
        ),
        (
            lambda s: s.assign(MisconceptionId=s["MisconceptionId"].str.rsplit(" ", n=1).str[0]),
            "24 ids, expected 25",
        ),
        (
            lambda s: s.assign(
                MisconceptionId=s["MisconceptionId"].str.replace(
                    r"^(\d+) (\d+)", r"\1 \1", regex=True
                )
            ),
            "repeated ids",
        ),
        (
            lambda s: s.assign(
                MisconceptionId=s["MisconceptionId"].str.replace(r"^\d+", "99999", regex=True)
            ),
            "not in the misconception mapping",
        ),
        (
            lambda s: s.assign(
                MisconceptionId=s["MisconceptionId"].str.replace(r"^\d+", "1.5", regex=True)
            ),
            "non-negative integers",
        ),
    ],
    ids=[
        "header",
        "missing-row",
        "duplicate-row",
        "foreign-row",
        "short",
        "repeat",
        "unknown",
        "non-integer",
    ],
)
def test_invalid_submissions_are_refused_and_not_written(valid, tmp_path, corrupt, message):
    submission, test, ids = valid
    path = tmp_path / "submission.csv"
    path.write_text("previous result\n")
    with pytest.raises(SubmissionError, match=message):
        write_submission(corrupt(submission.copy()), path, test, ids)
    assert path.read_text() == "previous result\n"
