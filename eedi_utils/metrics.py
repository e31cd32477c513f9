"""MAP@K with the competition's semantics, recall@K, rank histograms and the seen/unseen split.

Each row has exactly one gold id. Its score is 1/rank of the gold id's first occurrence among
the first K predictions, else 0: a repeated id occupies its slot but never scores twice, and
lists shorter than K are allowed (that is Kaggle's `apk` with a single relevant item).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from eedi_utils.config import NUM_PREDICTIONS

HISTOGRAM_EDGES = (1, 3, 5, 10, 25)


def map_key(k: int = NUM_PREDICTIONS) -> str:
    """The key under which `score_report` puts MAP@k: "map@25" for the competition's k."""
    return f"map@{k}"


def lb_key(k: int = NUM_PREDICTIONS) -> str:
    """The key of the leaderboard estimate: MAP@k with unseen rows weighted as in the test.
    Its value is None (null in JSON) when the seen or the unseen side has no rows."""
    return f"map@{k}_lb"


def format_score(value: float | None, width: int = 6, digits: int = 4) -> str:
    """A score for a text table, or "missing" (right-aligned to `width`) where it is None."""
    return f"{value:{width}.{digits}f}" if value is not None else f"{'missing':>{width}}"


def recall_key(k: int = NUM_PREDICTIONS) -> str:
    """The key under which `score_report` puts recall@k."""
    return f"recall@{k}"


def gold_ranks(
    predictions: Sequence[Sequence[int]] | np.ndarray, gold: Sequence[int], k: int = NUM_PREDICTIONS
) -> np.ndarray:
    """1-based rank of each row's gold id among its first k predictions; 0 where absent."""
    gold = np.asarray(gold, dtype=np.int64)
    if len(predictions) != len(gold):
        raise ValueError(f"{len(predictions)} prediction rows but {len(gold)} gold ids")
    ranks = np.zeros(len(gold), dtype=np.int64)
    for row, (predicted, answer) in enumerate(zip(predictions, gold)):
        hits = np.flatnonzero(np.asarray(predicted[:k], dtype=np.int64) == answer)
        if hits.size:
            ranks[row] = hits[0] + 1
    return ranks


def _average_precision(ranks: np.ndarray) -> np.ndarray:
    return np.where(ranks > 0, 1.0 / np.maximum(ranks, 1), 0.0)


def map_at_k(
    predictions: Sequence[Sequence[int]] | np.ndarray, gold: Sequence[int], k: int = NUM_PREDICTIONS
) -> float:
    """Mean average precision at k with one gold id per row."""
    ranks = gold_ranks(predictions, gold, k)
    return float(_average_precision(ranks).mean()) if len(ranks) else 0.0


def recall_at_k(
    predictions: Sequence[Sequence[int]] | np.ndarray, gold: Sequence[int], k: int = NUM_PREDICTIONS
) -> float:
    """Share of rows whose gold id is among the first k predictions."""
    ranks = gold_ranks(predictions, gold, k)
    return float((ranks > 0).mean()) if len(ranks) else 0.0


def rank_histogram(ranks: Iterable[int], edges: Sequence[int] = HISTOGRAM_EDGES) -> dict[str, int]:
    """Counts of gold ranks in buckets such as '1', '2-3', ..., '11-25' and 'miss' (rank 0)."""
    ranks = np.asarray(list(ranks), dtype=np.int64)
    histogram: dict[str, int] = {}
    low = 1
    for high in edges:
        label = str(low) if low == high else f"{low}-{high}"
        histogram[label] = int(((ranks >= low) & (ranks <= high)).sum())
        low = high + 1
    histogram[f">{edges[-1]}"] = int((ranks > edges[-1]).sum())
    histogram["miss"] = int((ranks == 0).sum())
    return histogram


def _summary(ranks: np.ndarray, k: int) -> dict[str, float | int]:
    if not len(ranks):
        return {map_key(k): 0.0, recall_key(k): 0.0, "n": 0}
    return {
        map_key(k): round(float(_average_precision(ranks).mean()), 4),
        recall_key(k): round(float((ranks > 0).mean()), 4),
        "n": int(len(ranks)),
    }


def score_report(
    predictions: Sequence[Sequence[int]] | np.ndarray,
    gold: Sequence[int],
    seen_mask: Sequence[bool] | np.ndarray | None = None,
    k: int = NUM_PREDICTIONS,
    lb_unseen_share: float | None = None,
) -> dict:
    """MAP@k, recall@k, n and the rank histogram; split into seen/unseen rows when
    `seen_mask` says, per row, whether its gold id appears in the training data. With
    `lb_unseen_share` u also the leaderboard estimate (1 - u) seen + u unseen, which does not
    depend on how many unseen rows this split happens to hold; None when a side it weighs has no
    rows (an empty side has no MAP, and counting it as 0 would understate the estimate)."""
    ranks = gold_ranks(predictions, gold, k)
    report: dict = _summary(ranks, k)
    if seen_mask is not None:
        seen_mask = np.asarray(seen_mask, dtype=bool)
        report["seen"] = _summary(ranks[seen_mask], k)
        report["unseen"] = _summary(ranks[~seen_mask], k)
        report["unseen_share"] = round(float((~seen_mask).mean()), 4) if len(ranks) else 0.0
        if lb_unseen_share is not None:
            u, key = lb_unseen_share, map_key(k)
            seen, unseen = report["seen"], report["unseen"]
            report[lb_key(k)] = (
                round((1 - u) * seen[key] + u * unseen[key], 4)
                if (seen["n"] or u == 1) and (unseen["n"] or u == 0)
                else None
            )
    report["rank_histogram"] = rank_histogram(ranks)
    return report
