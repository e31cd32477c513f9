"""Hard negatives: gold excluded by id (paraphrases too), rank ranges, margin, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eedi_utils.train.retriever.mining import mine_negatives


def unit(rows: list[list[float]]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_every_text_of_the_gold_id_is_excluded() -> None:
    # documents 0 and 1 are two paraphrases of misconception 7; both sit closest to the query
    documents = unit([[1, 0], [0.99, 0.1], [0.9, 0.4], [0.5, 0.8], [0, 1]])
    ids = [7, 7, 3, 4, 5]
    negatives = mine_negatives(
        unit([[1, 0]]), documents, ids, [7], n_negatives=3, rank_range=(1, 3)
    )
    assert sorted(negatives[0].tolist()) == [2, 3, 4]


def test_negatives_come_from_the_rank_range() -> None:
    rng = torch.Generator().manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(40, 8, generator=rng), dim=1)
    documents = torch.nn.functional.normalize(torch.randn(60, 8, generator=rng), dim=1)
    ids = np.arange(100, 160)
    gold = ids[np.arange(40)]
    negatives = mine_negatives(queries, documents, ids, gold, n_negatives=4, rank_range=(3, 10))
    for row in range(40):
        order = [
            p
            for p in (queries[row] @ documents.T).argsort(descending=True).tolist()
            if ids[p] != gold[row]
        ]
        allowed = set(order[2:10])
        assert set(negatives[row].tolist()) <= allowed
        assert len(set(negatives[row].tolist())) == 4
        assert gold[row] not in ids[negatives[row]]


def test_margin_skips_likely_false_negatives() -> None:
    documents = unit([[1, 0], [0.999, 0.04], [0.8, 0.6], [0.6, 0.8], [0, 1]])
    ids = [0, 1, 2, 3, 4]
    query = unit([[0.98, 0.2]])  # document 1 scores about as high as the gold (0)
    kept = mine_negatives(query, documents, ids, [0], n_negatives=2, rank_range=(1, 2), margin=0.01)
    assert 1 not in kept[0].tolist()
    unfiltered = mine_negatives(query, documents, ids, [0], 2, rank_range=(1, 2))
    assert 1 in unfiltered[0].tolist()


def test_too_few_candidates_fall_back_to_the_ranks_after_the_range() -> None:
    """A margin that rules out every candidate leaves ranks (3, 4) empty: the negatives are
    ranks 5-6 of the non-gold documents, never the closest ones (ranks 1-2)."""
    by_rank = [[1, 0], [0.95, 0.31], [0.9, 0.44], [0.8, 0.6], [0.7, 0.71], [0.6, 0.8],
               [0.5, 0.87], [0.3, 0.95], [0, 1]]  # fmt: skip
    positions = [4, 7, 0, 2, 8, 5, 1, 3, 6]  # document position of each rank (0: the gold)
    documents = unit([by_rank[positions.index(p)] for p in range(9)])
    ids = [10 + p for p in range(9)]
    gold = [10 + positions[0]]
    query = unit([[1, 0]])
    negatives = mine_negatives(query, documents, ids, gold, 2, rank_range=(3, 4), margin=2.0)
    assert sorted(negatives[0].tolist()) == sorted(positions[5:7])
    at_the_end = mine_negatives(query, documents, ids, gold, 2, rank_range=(7, 8), margin=2.0)
    assert sorted(at_the_end[0].tolist()) == sorted(positions[7:9])  # the last two


def test_seeded_and_seed_dependent() -> None:
    rng = torch.Generator().manual_seed(1)
    queries = torch.nn.functional.normalize(torch.randn(30, 8, generator=rng), dim=1)
    documents = torch.nn.functional.normalize(torch.randn(80, 8, generator=rng), dim=1)
    ids, gold = np.arange(80), np.arange(30)
    first = mine_negatives(queries, documents, ids, gold, 3, (1, 40), seed=5)
    assert np.array_equal(first, mine_negatives(queries, documents, ids, gold, 3, (1, 40), seed=5))
    assert not np.array_equal(
        first, mine_negatives(queries, documents, ids, gold, 3, (1, 40), seed=6)
    )


def test_bad_arguments() -> None:
    documents = unit([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="rank_range"):
        mine_negatives(documents, documents, [0, 1], [0, 1], 1, rank_range=(0, 5))
    with pytest.raises(ValueError, match="only 2 documents"):
        mine_negatives(documents, documents, [0, 1], [0, 1], 2)


def test_relative_margin_skips_candidates_within_a_share_of_the_gold_score() -> None:
    """sentence-transformers' rule (util/hard_negatives.py): skip a candidate scoring above
    gold - |gold| * relative_margin. The gold scores 0.8: 5% puts the bar at 0.76, so the
    candidates at 0.9 and 0.78 go, where an absolute margin of 0.01 (bar 0.79) keeps 0.78."""
    cosines = [0.8, 0.9, 0.78, 0.7, 0.5, 0.3]  # document 0 is the gold
    documents = unit([[c, (1 - c * c) ** 0.5] for c in cosines])
    query, ids = unit([[1, 0]]), [0, 1, 2, 3, 4, 5]
    relative = mine_negatives(
        query, documents, ids, [0], 3, rank_range=(1, 5), relative_margin=0.05
    )
    assert sorted(relative[0].tolist()) == [3, 4, 5]
    absolute = mine_negatives(query, documents, ids, [0], 4, rank_range=(1, 5), margin=0.01)
    assert sorted(absolute[0].tolist()) == [2, 3, 4, 5]
