"""Cross-fitting: no row is ranked by a choice made on it, and a pick at the grid's edge is
flagged."""

from __future__ import annotations

import numpy as np

from eedi_utils.cross_fit import best_index, cross_fit, edge_note, group_halves


def test_halves_keep_each_group_on_one_side() -> None:
    groups = np.array([5, 5, 7, 9, 9, 9, 11, 13])
    first = group_halves(groups, seed=3)
    for group in np.unique(groups):
        assert len(set(first[groups == group])) == 1
    assert 0 < first.sum() < len(groups)


def test_each_half_is_ranked_by_the_choice_made_on_the_other() -> None:
    """Candidate 0 ranks every gold first on the first half only, candidate 1 on the second
    only: the in-fold best of either is a perfect half, but cross-fitted each half gets the
    candidate that won elsewhere, so every row scores as the other half's winner ranks it."""
    groups = np.repeat(np.arange(8), 2)
    first = group_halves(groups, seed=0)
    gold = np.arange(16)
    seen = np.tile([True, False], 8)
    right = np.stack([gold, gold + 100], axis=1)  # the gold first
    wrong = np.stack([gold + 100, gold + 200], axis=1)  # the gold nowhere
    only_first = np.where(first[:, None], right, wrong)
    only_second = np.where(first[:, None], wrong, right)
    fitted = cross_fit([only_first, only_second], gold, seen, groups, 2, 0.75)
    assert fitted.picks == (1, 0)  # the first half ranked by the second half's winner
    assert fitted.report["map@2"] == 0.0  # in-fold tuning would have reported 0.5
    same = cross_fit([right, wrong], gold, seen, groups, 2, 0.75)
    assert same.picks == (0, 0) and same.report["map@2"] == 1.0


def test_no_choice_without_an_estimate_or_two_groups() -> None:
    gold = np.arange(4)
    ranking = np.stack([gold, gold + 10], axis=1)
    assert cross_fit([ranking], gold, np.ones(4, bool), np.arange(4), 2, 0.75) is None
    assert cross_fit([ranking], gold, np.array([1, 0, 1, 0], bool), np.zeros(4), 2, 0.75) is None


def test_best_index_and_edges() -> None:
    assert best_index([0.1, None, 0.3, 0.3]) == 2 and best_index([None, None]) is None
    grid = [0.0, 0.05, 0.1]
    assert "largest tried" in edge_note(grid, 0.1, "prior")
    assert edge_note(grid, 0.05, "prior") is None and edge_note(grid, 0.0, "prior") is None
    assert "smallest tried" in edge_note([0.02, 0.04], 0.02, "prior")
