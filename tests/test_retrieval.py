"""Exact chunked top-K, fusion, dtype choice, and retrieval with a tiny and the real model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from eedi_utils.config import ConfigError, KitConfig, RetrievalConfig, config_from_dict
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.devices import resolve_dtype
from eedi_utils.embedder import encode, load_embedder
from eedi_utils.metrics import map_at_k
from eedi_utils.retrieval import fused_top_k, reciprocal_rank_fusion, retrieve, top_k
from eedi_utils.text import misconception_texts, query_texts


def normalised(*shape: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_chunked_top_k_equals_torch_topk_of_the_full_matrix(chunk_size) -> None:
    queries, documents = normalised(50, 16, seed=0), normalised(300, 16, seed=1)
    scores, positions = fused_top_k([queries], [documents], k=25, chunk_size=chunk_size)
    full = torch.from_numpy(queries @ documents.T).topk(25, dim=1)
    assert np.array_equal(positions, full.indices.numpy())
    assert np.allclose(scores, full.values.numpy())


def test_mean_fusion_is_the_weighted_mean_of_cosines() -> None:
    q1, q2 = normalised(20, 8, seed=2), normalised(20, 12, seed=3)
    d1, d2 = normalised(40, 8, seed=4), normalised(40, 12, seed=5)
    scores, positions = fused_top_k([q1, q2], [d1, d2], k=5, chunk_size=6, weights=[3, 1])
    expected = torch.from_numpy(0.75 * q1 @ d1.T + 0.25 * q2 @ d2.T).topk(5, dim=1)
    assert np.array_equal(positions, expected.indices.numpy())
    assert np.allclose(scores, expected.values.numpy(), atol=1e-6)


def test_top_k_keeps_equal_scores_in_column_order_at_the_kth_rank_too() -> None:
    """Misconception names hold exact duplicates: which of two tied ids comes first must not
    depend on how deep the ranking goes."""
    scores, positions = top_k(np.array([[0.5, 0.9, 0.5, 0.1, 0.5]]), 3)
    assert positions.tolist() == [[1, 0, 2]]
    assert scores.tolist() == [[0.9, 0.5, 0.5]]
    rng = np.random.default_rng(0)
    tied = rng.integers(0, 4, size=(50, 300)).astype(np.float32)  # many ties at every rank
    for k in (1, 25, 299):
        assert np.array_equal(top_k(tied, k)[1], top_k(tied, 300)[1][:, :k])
    _, with_nan = top_k(np.array([[np.nan, 0.2, 0.3]]), 3)
    assert with_nan.tolist() == [[2, 1, 0]]  # NaN last


def test_k_larger_than_documents_is_capped() -> None:
    _, positions = fused_top_k([normalised(3, 4, seed=6)], [normalised(5, 4, seed=7)], k=25)
    assert positions.shape == (3, 5)


def test_reciprocal_rank_fusion_by_hand() -> None:
    first = np.array([[0, 1, 2]])
    second = np.array([[2, 1, 3]])
    # rrf_k=0: doc0 1, doc1 1/2+1/2=1, doc2 1/3+1 = 4/3, doc3 1/3; doc0 and doc1 tie
    fused = reciprocal_rank_fusion([first, second], k=3, n_documents=5, rrf_k=0)
    assert fused.tolist() == [[2, 0, 1]]


def test_dtype_choice() -> None:
    assert resolve_dtype("float32", "cpu") is torch.float32
    assert resolve_dtype("float16", "cuda") is torch.float16
    assert resolve_dtype("auto", "cpu") in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="dtype must be"):
        resolve_dtype("int8", "cpu")


def test_tiny_model_retrieval_returns_valid_positions(tiny_model, sample) -> None:
    data = CompetitionData(sample)
    config = KitConfig()
    config.retrieval.show_progress = False
    long = data.test()
    documents = misconception_texts(data.misconceptions, config.text)
    positions = retrieve(query_texts(long, config.text), documents, [tiny_model], config.retrieval)
    assert positions.shape == (len(long), 25)
    assert all(len(set(row)) == 25 for row in positions.tolist())
    assert positions.max() < len(documents)


def test_rrf_of_two_models_ranks_by_the_summed_reciprocal_ranks(tiny_model, sample) -> None:
    """Each model's own top `rrf_depth`, fused by hand: sum of 1 / (k + rank) per document."""
    data = CompetitionData(sample)
    config = KitConfig()
    config.retrieval.show_progress = False
    queries = query_texts(data.test(), config.text)
    documents = misconception_texts(data.misconceptions, config.text)
    depth = dataclasses.replace(config.retrieval, top_k=config.retrieval.rrf_depth)
    singles = [retrieve(queries, documents, [m], depth) for m in (tiny_model, None)]
    config.retrieval.fusion = "rrf"
    fused = retrieve(queries, documents, [tiny_model, None], config.retrieval)
    assert not np.array_equal(fused, singles[0][:, :25])  # both models count
    for row, ranked in enumerate(fused):
        score = {}
        for single in singles:
            for rank, position in enumerate(single[row], 1):
                score[position] = score.get(position, 0.0) + 1 / (config.retrieval.rrf_k + rank)
        ours = [score[p] for p in ranked]
        assert ours == sorted(ours, reverse=True)
        assert ours[-1] >= sorted(score.values(), reverse=True)[25]


def test_encode_is_normalised_and_batched_the_same(tiny_model) -> None:
    texts = [f"question number {i} about fractions" for i in range(10)]
    small = RetrievalConfig(batch_size=3, show_progress=False, dtype="float32")
    large = RetrievalConfig(batch_size=64, show_progress=False, dtype="float32")
    model = load_embedder(tiny_model, small)
    a, b = encode(model, texts, small), encode(model, texts, large)
    assert a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), np.ones(10), atol=1e-5)
    assert np.allclose(a, b, atol=1e-5)


def test_missing_model_folder_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        load_embedder(tmp_path / "nope", RetrievalConfig())


def test_unknown_fusion_is_refused_by_the_config_loader_before_anything_loads() -> None:
    with pytest.raises(ConfigError, match="fusion: 'max' is not one of the allowed values"):
        config_from_dict({"retrieval": {"fusion": "max"}})


@pytest.mark.slow
def test_default_model_beats_chance_on_the_sample(sample) -> None:
    data = CompetitionData(sample)
    config = KitConfig()
    config.retrieval.show_progress = False
    train = labelled(data.train())
    positions = retrieve(
        query_texts(train, config.text),
        misconception_texts(data.misconceptions, config.text),
        [None],
        config.retrieval,
    )
    ranked = data.misconceptions["MisconceptionId"].to_numpy()[positions]
    score = map_at_k(ranked, train["MisconceptionId"].to_numpy(np.int64))
    chance = np.mean([1 / r for r in range(1, 26)]) * 25 / len(data.misconceptions)
    assert score > 5 * chance
