"""The unseen-misconception prior: at ranking time, add a constant to the score of every
misconception that no training row labels.

Most hidden-test rows carry such misconceptions, while a fine-tuned retriever learns to favour
the ones it saw; the 3rd-place team reported 0.564 -> 0.600 private from this lever alone. The
strength is tuned on the validation fold by the leaderboard estimate (`eedi train` does it;
the figure to report is cross-fitted, see `cross_fit`), and a final run on every row takes the
strength its CV run chose (`[train] unseen_prior_from`). It is stored in the model folder, so
`eedi predict --model OUT` and the inference notebook apply it; the ids counted as labelled are
those of the training side of the rows ranked (all of train.csv for the test, a fold's
training rows in CV).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PRIOR_FILE = "unseen_prior.json"


@dataclass(frozen=True)
class UnseenPrior:
    """`strength` added to the score of each misconception outside `labelled_ids`."""

    strength: float
    labelled_ids: frozenset[int]

    def bonus(self, document_ids: Iterable[int]) -> np.ndarray:
        """Per document: `strength` if its id is never labelled in training, else 0."""
        ids = np.fromiter((int(i) for i in document_ids), np.int64)
        labelled = np.fromiter(self.labelled_ids, np.int64, len(self.labelled_ids))
        return np.where(np.isin(ids, labelled), 0.0, self.strength).astype(np.float32)


def write_prior(
    folder: Path,
    prior: UnseenPrior,
    source: str,
    tuning: list[dict] | None = None,
    cross_fitted: dict | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Store the prior beside a model, with where its strength came from and, when it was
    tuned, the table of every strength, the cross-fitted row and the tuning's warnings."""
    path = Path(folder) / PRIOR_FILE
    record = {
        "strength": prior.strength,
        "source": source,
        "labelled_ids": sorted(prior.labelled_ids),
        "tuning": tuning or [],
        "cross_fitted": cross_fitted,
        "notes": notes or [],
    }
    path.write_text(json.dumps(record, indent=2))
    return path


def read_prior(folder: str | Path) -> UnseenPrior | None:
    """The prior stored in a model folder, None when it has none."""
    path = Path(folder) / PRIOR_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return UnseenPrior(float(record["strength"]), frozenset(int(i) for i in record["labelled_ids"]))
