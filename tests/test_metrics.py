"""MAP@K against hand-worked cases, including repeated ids and short lists."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eedi_utils.metrics import gold_ranks, map_at_k, rank_histogram, recall_at_k, score_report


def kaggle_apk(actual: list[int], predicted: list[int], k: int = 25) -> float:
    """The reference apk of Kaggle's ml_metrics, copied from its published definition."""
    predicted = predicted[:k]
    score, hits = 0.0, 0.0
    for i, p in enumerate(predicted):
        if p in actual and p not in predicted[:i]:
            hits += 1.0
            score += hits / (i + 1.0)
    return score / min(len(actual), k)


@pytest.mark.parametrize(
    ("predicted", "gold", "expected"),
    [
        ([7, 1, 2], 7, 1.0),
        ([1, 7, 2], 7, 0.5),
        ([1, 2, 3], 7, 0.0),
        ([7, 7, 7], 7, 1.0),  # a repeated id cannot score twice
        ([1, 1, 7], 7, 1 / 3),  # repeats still occupy their slots
        ([], 7, 0.0),  # an empty list is allowed
        ([3, 7], 7, 0.5),  # fewer than 25 predictions
        (list(range(100, 124)) + [7], 7, 1 / 25),
        (list(range(100, 125)) + [7], 7, 0.0),  # rank 26 is outside @25
    ],
)
def test_hand_worked_rows(predicted, gold, expected) -> None:
    assert map_at_k([predicted], [gold]) == pytest.approx(expected)
    assert kaggle_apk([gold], predicted) == pytest.approx(expected)


def test_mean_over_rows_and_recall() -> None:
    predictions = [[5, 6, 7], [1, 2, 3], [9, 9, 4], [8]]
    gold = [7, 1, 4, 2]
    assert map_at_k(predictions, gold) == pytest.approx((1 / 3 + 1 + 1 / 3 + 0) / 4)
    assert recall_at_k(predictions, gold) == pytest.approx(3 / 4)
    assert recall_at_k(predictions, gold, k=2) == pytest.approx(1 / 4)
    assert gold_ranks(predictions, gold).tolist() == [3, 1, 3, 0]


def test_random_cases_match_reference_apk() -> None:
    rng = np.random.default_rng(0)
    predictions = [rng.integers(0, 30, size=rng.integers(0, 30)).tolist() for _ in range(300)]
    gold = rng.integers(0, 30, size=300).tolist()
    expected = np.mean([kaggle_apk([g], p) for p, g in zip(predictions, gold)])
    assert map_at_k(predictions, gold) == pytest.approx(expected)


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 prediction rows but 1 gold"):
        map_at_k([[1], [2]], [1])


def test_rank_histogram_buckets() -> None:
    assert rank_histogram([1, 2, 3, 4, 7, 25, 0, 0]) == {
        "1": 1,
        "2-3": 2,
        "4-5": 1,
        "6-10": 1,
        "11-25": 1,
        ">25": 0,
        "miss": 2,
    }


def test_score_report_splits_seen_and_unseen() -> None:
    predictions = [[1, 2], [2, 1], [3, 4], [5, 6]]
    gold = [1, 1, 4, 9]
    report = score_report(predictions, gold, seen_mask=[True, True, False, False])
    assert report["n"] == 4
    assert report["map@25"] == pytest.approx((1 + 0.5 + 0.5 + 0) / 4)
    assert report["seen"] == {"map@25": 0.75, "recall@25": 1.0, "n": 2}
    assert report["unseen"] == {"map@25": 0.25, "recall@25": 0.5, "n": 2}
    assert report["unseen_share"] == 0.5


def test_leaderboard_estimate_weights_seen_and_unseen_by_the_assumed_share() -> None:
    predictions = [[1, 2], [3, 1], [5, 6], [7, 8]]
    gold = [1, 1, 6, 9]  # seen rows: ranks 1 and 2; unseen rows: rank 2 and missing
    report = score_report(predictions, gold, [True, True, False, False], k=25, lb_unseen_share=0.75)
    seen, unseen = (1 + 0.5) / 2, (0.5 + 0) / 2
    assert report["seen"]["map@25"] == seen and report["unseen"]["map@25"] == unseen
    assert report["map@25_lb"] == round(0.25 * seen + 0.75 * unseen, 4)
    assert "map@25_lb" not in score_report(predictions, gold, [True, True, False, False])


def test_leaderboard_estimate_is_missing_when_a_side_has_no_rows() -> None:
    predictions = [[1, 2], [3, 1], [5, 6]]
    gold = [1, 1, 5]  # ranks 1, 2, 1: MAP 0.8333
    all_seen = score_report(predictions, gold, [True] * 3, k=25, lb_unseen_share=0.75)
    assert all_seen["seen"]["n"] == 3 and all_seen["unseen"]["n"] == 0
    assert "map@25_lb" in all_seen and all_seen["map@25_lb"] is None  # not 0.25 * 0.8333
    all_unseen = score_report(predictions, gold, [False] * 3, k=25, lb_unseen_share=0.75)
    assert all_unseen["map@25_lb"] is None  # not 0.75 * 0.8333
    assert json.loads(json.dumps(all_seen))["map@25_lb"] is None  # null in JSON
    both = score_report(predictions, gold, [True, True, False], k=25, lb_unseen_share=0.75)
    assert both["map@25_lb"] == round(0.25 * 0.75 + 0.75 * 1.0, 4)
    # a side weighted 0 may be empty
    assert score_report(predictions, gold, [True] * 3, k=25, lb_unseen_share=0.0)[
        "map@25_lb"
    ] == round(2.5 / 3, 4)


def test_a_missing_score_prints_as_missing() -> None:
    from eedi_utils.metrics import format_score

    assert format_score(None) == "missing" and format_score(0.25) == "0.2500"
    assert format_score(None, 8) == " missing" and format_score(0.25, 8) == "  0.2500"
