"""Choosing a setting on a validation fold without grading it on the rows it was chosen on.

A strength (or any setting) picked as the best on a fold and then reported on that same fold
is an optimistic figure: differences of a few thousandths between candidates are inside that
noise. Cross-fitting splits the fold's groups (constructs, by default) in two halves, picks on
one half, ranks the other half with that pick, swaps, and scores the assembled ranking: every
row is ranked by a choice made without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eedi_utils.metrics import lb_key, score_report


def group_halves(groups: np.ndarray, seed: int = 0) -> np.ndarray:
    """True for the rows of the first half: the distinct groups shuffled by `seed`, every
    other one taken, so no group sits on both sides."""
    distinct = np.unique(groups)
    shuffled = np.random.default_rng(seed).permutation(distinct)
    return np.isin(groups, shuffled[::2])


def best_index(estimates: Sequence[float | None]) -> int | None:
    """Position of the largest estimate (the first of equals), None when all are missing."""
    scored = [(value, -i) for i, value in enumerate(estimates) if value is not None]
    return -max(scored)[1] if scored else None


def edge_note(grid: Sequence[float], chosen: float, name: str) -> str | None:
    """A warning when `chosen` is the largest value of `grid`, or its smallest while above 0:
    the best may lie outside what was tried."""
    if len(grid) > 1 and chosen == max(grid):
        return f"{name} {chosen} is the largest tried: widen the grid upward"
    if len(grid) > 1 and chosen == min(grid) and chosen > 0:
        return f"{name} {chosen} is the smallest tried: widen the grid downward"
    return None


@dataclass(frozen=True)
class CrossFit:
    """The report of a cross-fitted choice, and the candidate each half was ranked with."""

    report: dict
    picks: tuple[int, int]


def cross_fit(
    rankings: Sequence[np.ndarray],
    gold: np.ndarray,
    seen: np.ndarray,
    groups: np.ndarray,
    k: int,
    lb_unseen_share: float,
    seed: int = 0,
) -> CrossFit | None:
    """Rank each half of the rows with the candidate (one ranking of all rows per candidate)
    that has the best map@k_lb on the other half; the score report of the result. None when
    the rows form fewer than two groups, or a tuning half has no estimate (no seen or no
    unseen rows) for any candidate."""
    if len(np.unique(groups)) < 2:
        return None
    first = group_halves(groups, seed)
    assembled = np.array(rankings[0], copy=True)
    picks = []
    for scored in (first, ~first):
        tune = ~scored
        estimates = [
            score_report(r[tune], gold[tune], seen[tune], k, lb_unseen_share)[lb_key(k)]
            for r in rankings
        ]
        best = best_index(estimates)
        if best is None:
            return None
        assembled[scored] = rankings[best][scored]
        picks.append(best)
    report = score_report(assembled, gold, seen, k, lb_unseen_share)
    return CrossFit(report, (picks[0], picks[1]))
