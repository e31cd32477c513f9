"""Hard negatives mined from the model being trained, excluding the gold misconception by id.

sentence-transformers' `mine_hard_negatives` excludes the positive by its text; this kit keys
everything by MisconceptionId instead, so paraphrases of the gold (several texts for one id)
can never come back as "negatives" (the bug of the project this kit grows from).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def mine_negatives(
    query_embeddings: np.ndarray | torch.Tensor,
    document_embeddings: np.ndarray | torch.Tensor,
    document_ids: Sequence[int],
    gold_ids: Sequence[int],
    n_negatives: int,
    rank_range: tuple[int, int] = (1, 100),
    margin: float | None = None,
    relative_margin: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Document positions of `n_negatives` hard negatives per query, shape (queries, n).

    For each query all documents are ranked by cosine similarity, every document whose id is
    the query's gold id is removed, and `n_negatives` are drawn at random (seeded) from ranks
    `rank_range` (1-based, inclusive) of what is left. With `margin`, candidates scoring above
    the gold's best score minus `margin` are skipped as likely false negatives; with
    `relative_margin`, those above the gold's score minus `relative_margin` times its magnitude
    (sentence-transformers' `mine_hard_negatives(relative_margin=)`, the NV-Retriever
    "TopK-PercPos" rule; `util/hard_negatives.py`). A query with
    fewer than `n_negatives` candidates left in the range falls back to the ranks right after
    the range (never to closer ones, which are the likeliest false negatives).
    """
    start, stop = rank_range
    if not 1 <= start <= stop:
        raise ValueError(f"rank_range must satisfy 1 <= start <= stop, got {rank_range}")
    query_embeddings = torch.as_tensor(query_embeddings)
    document_embeddings = torch.as_tensor(document_embeddings)
    document_ids = torch.tensor(np.array(document_ids, dtype=np.int64))
    gold = torch.tensor(np.array(gold_ids, dtype=np.int64))
    n_documents = len(document_ids)
    if n_negatives > n_documents - 1:
        raise ValueError(f"{n_negatives} negatives asked but only {n_documents} documents")
    rng = np.random.default_rng(seed)
    negatives = np.empty((len(gold), n_negatives), dtype=np.int64)
    chunk = 1024
    for begin in range(0, len(gold), chunk):
        similarity = query_embeddings[begin : begin + chunk] @ document_embeddings.T
        is_gold = document_ids[None, :] == gold[begin : begin + chunk, None]
        gold_score = similarity.masked_fill(~is_gold, float("-inf")).max(dim=1).values
        similarity = similarity.masked_fill(is_gold, float("-inf"))
        by_rank = similarity.argsort(dim=1, descending=True)  # gold last, margin not applied
        for threshold in thresholds(gold_score, margin, relative_margin):
            similarity = similarity.masked_fill(similarity > threshold[:, None], float("-inf"))
        for row in range(by_rank.shape[0]):
            ranked = by_rank[row][~is_gold[row][by_rank[row]]].numpy()
            kept = ranked[similarity[row][ranked].numpy() > float("-inf")]
            window = kept[start - 1 : stop]
            if len(window) < n_negatives:  # the ranks right after the range, margins ignored
                after = min(stop, len(ranked) - n_negatives)
                window = ranked[after : after + n_negatives]
            negatives[begin + row] = rng.choice(window, n_negatives, replace=False)
    return negatives


def thresholds(
    gold_score: torch.Tensor, margin: float | None, relative_margin: float | None
) -> list[torch.Tensor]:
    """Per-query scores above which a candidate counts as a likely false negative."""
    found = []
    if margin is not None:
        found.append(gold_score - margin)
    if relative_margin is not None:
        found.append(gold_score - gold_score.abs() * relative_margin)
    return found
