"""Encoding with one process per device: the split forced over two CPU workers gives the
single-process embeddings in order; 4/8-bit loading is refused off CUDA; the estimate line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eedi_utils.config import RetrievalConfig, TextConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.embedder import encode, load_embedder
from eedi_utils.multi_device import deal, encode_on_devices, estimate, token_counts
from eedi_utils.retrieval import retrieve
from eedi_utils.text import misconception_texts, query_texts


@pytest.fixture(scope="module")
def texts(sample: Path) -> list[str]:
    data = CompetitionData(sample)
    return query_texts(labelled(data.train()).head(30), TextConfig()) + misconception_texts(
        data.misconceptions.head(50), TextConfig()
    )


def test_two_cpu_workers_give_the_single_process_embeddings(tiny_model: Path, texts) -> None:
    config = RetrievalConfig(device="cpu", dtype="float32", show_progress=False)
    alone = encode(load_embedder(tiny_model, config), texts, config)
    config.devices = ["cpu", "cpu"]
    split = encode_on_devices(tiny_model, texts, config)
    assert split.shape == alone.shape
    np.testing.assert_allclose(split, alone, atol=1e-5, rtol=1e-4)


def test_retrieve_over_devices_ranks_as_one_process(tiny_model: Path, sample: Path) -> None:
    data = CompetitionData(sample)
    queries = query_texts(labelled(data.train()).head(20), TextConfig())
    documents = misconception_texts(data.misconceptions, TextConfig())
    config = RetrievalConfig(device="cpu", dtype="float32", show_progress=False)
    alone = retrieve(queries, documents, [tiny_model], config)
    config.devices = ["cpu", "cpu"]
    np.testing.assert_array_equal(
        retrieve(queries, documents, [tiny_model], config)[:, :5], alone[:, :5]
    )


def test_shares_are_dealt_by_length(tiny_model: Path, texts) -> None:
    tokens = token_counts(tiny_model, texts, 64)
    assert tokens.max() <= 64
    shares = deal(tokens, 2)
    assert sorted(np.concatenate(shares).tolist()) == list(range(len(texts)))
    totals = [int(tokens[s].sum()) for s in shares]
    assert abs(totals[0] - totals[1]) <= tokens.max()  # no worker gets the long texts only


def test_estimate_names_texts_tokens_and_time() -> None:
    tokens = np.array([100] * 600)
    assert estimate(tokens, RetrievalConfig(), 2) == "600 texts, 60000 tokens on 2 device(s)"
    line = estimate(tokens, RetrievalConfig(tokens_per_second=250.0), 2)
    assert line.endswith(": about 2.0 min at 250 tokens/s per device")


@pytest.mark.parametrize("bits", [4, 8])
def test_quantised_loading_needs_cuda(tiny_model: Path, bits: int) -> None:
    config = RetrievalConfig(device="cpu", load_in_bits=bits)
    with pytest.raises(ValueError, match=f"{bits}-bit loading .* needs a CUDA GPU"):
        load_embedder(tiny_model, config)
    with pytest.raises(ValueError, match="load_in_bits must be 0, 4 or 8"):
        load_embedder(tiny_model, RetrievalConfig(device="cpu", load_in_bits=3))
