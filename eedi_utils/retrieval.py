"""Exact cosine top-K over embeddings, fusion of several models (mean or RRF), and the
retrieval step that encodes with each model (on one device or several) and ranks."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eedi_utils.config import RetrievalConfig
from eedi_utils.cpu_embedder import is_exported
from eedi_utils.embedder import default_model_path, encode, load_embedder

logger = logging.getLogger(__name__)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` highest scores of each row, best first, and their column positions; equal
    scores in column order, at the k-th rank too (so `top_k(s, k)` is the first k of any
    deeper top-k); NaN ranks last."""
    scores = np.where(np.isnan(scores), -np.inf, scores)
    n_rows, n_columns = scores.shape
    k = min(k, n_columns)
    if k < n_columns:
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
        above, equal = scores > kth, scores == kth
        needed = k - above.sum(axis=1, keepdims=True)
        chosen = above | (equal & (np.cumsum(equal, axis=1) <= needed))
        candidates = np.nonzero(chosen)[1].reshape(n_rows, k)  # each row's columns, ascending
    else:
        candidates = np.broadcast_to(np.arange(n_columns), scores.shape)
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    order = np.argsort(-candidate_scores, axis=1, kind="stable")
    return (
        np.take_along_axis(candidate_scores, order, axis=1),
        np.take_along_axis(candidates, order, axis=1),
    )


def fused_top_k(
    queries: Sequence[np.ndarray],
    documents: Sequence[np.ndarray],
    k: int,
    chunk_size: int = 4096,
    weights: Sequence[float] | None = None,
    bonus: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k documents by the weighted mean of each model's cosine similarity, plus
    `bonus[d]` for document d when given (the unseen prior).

    `queries[m]` and `documents[m]` are model m's normalised embeddings. Queries are scored in
    chunks so the (queries x documents) matrix never has to fit in memory at once. Returns
    (scores, document positions), each of shape (n_queries, min(k, n_documents)).
    """
    if len(queries) != len(documents) or not queries:
        raise ValueError("need the same, non-zero number of query and document embeddings")
    weights = list(weights) if weights is not None else [1.0] * len(queries)
    total = float(sum(weights))
    n_queries = queries[0].shape[0]
    all_scores, all_positions = [], []
    for start in range(0, max(n_queries, 1), chunk_size):
        stop = min(start + chunk_size, n_queries)
        similarity = sum(
            np.float32(w / total) * (q[start:stop] @ d.T)
            for w, q, d in zip(weights, queries, documents)
        )
        if bonus is not None:
            similarity = similarity + np.asarray(bonus, dtype=np.float32)
        scores, positions = top_k(similarity, k)
        all_scores.append(scores)
        all_positions.append(positions)
    return np.concatenate(all_scores), np.concatenate(all_positions)


def reciprocal_rank_fusion(
    rankings: Sequence[np.ndarray], k: int, n_documents: int, rrf_k: int = 60
) -> np.ndarray:
    """Fuse ranked document positions (one (n_queries, depth) array per model) by RRF.

    Each document scores sum(1 / (rrf_k + rank)) over the lists it appears in; returns the
    top-k positions per query, shape (n_queries, min(k, n_documents)).
    """
    n_queries = rankings[0].shape[0]
    fused = np.zeros((n_queries, n_documents), dtype=np.float64)
    rows = np.arange(n_queries)[:, None]
    for ranking in rankings:
        ranks = np.arange(1, ranking.shape[1] + 1, dtype=np.float64)
        np.add.at(fused, (rows, ranking.astype(np.int64)), 1.0 / (rrf_k + ranks))
    return top_k(fused, k)[1]


@functools.cache
def warn_devices_unused(path: str, devices: tuple[str, ...]) -> None:
    """Say once per process (not once per CV fold) that an export ignores [retrieval] devices."""
    logger.warning(
        "%s is an export: it runs in this process on every CPU thread, [retrieval] devices %s "
        "is not used for it",
        path,
        list(devices),
    )


def retrieve(
    queries: Sequence[str],
    documents: Sequence[str],
    model_paths: Sequence[str | Path | None],
    config: RetrievalConfig,
    bonus: np.ndarray | None = None,
) -> np.ndarray:
    """Rank documents for each query with one or more models; returns document positions.
    `bonus` (one value per document) is added to the fused cosine, or with rrf fusion to each
    model's cosine before its ranking joins the fusion."""
    query_embeddings, document_embeddings = [], []
    for path in model_paths:
        if config.devices and path is not None and is_exported(path):
            warn_devices_unused(str(path), tuple(config.devices))
        elif config.devices:
            from eedi_utils.multi_device import encode_on_devices  # imports torch

            folder = path if path is not None else default_model_path()
            both = encode_on_devices(folder, [*queries, *documents], config)
            query_embeddings.append(both[: len(queries)])
            document_embeddings.append(both[len(queries) :])
            continue
        model = load_embedder(path, config)
        query_embeddings.append(encode(model, queries, config))
        document_embeddings.append(encode(model, documents, config))
        del model
    if config.fusion == "rrf" and len(model_paths) > 1:
        rankings = [
            fused_top_k([q], [d], config.rrf_depth, config.query_chunk_size, bonus=bonus)[1]
            for q, d in zip(query_embeddings, document_embeddings)
        ]
        positions = reciprocal_rank_fusion(rankings, config.top_k, len(documents), config.rrf_k)
    else:
        _, positions = fused_top_k(
            query_embeddings,
            document_embeddings,
            config.top_k,
            config.query_chunk_size,
            bonus=bonus,
        )
    return positions
