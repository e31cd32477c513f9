"""Encoding on several devices: one process per device, each loading its own copy of the
embedder (quantised or not) straight onto its device and encoding a share of the texts.

sentence-transformers' multi-process pool first moves the model to the CPU and ships it to
each worker, which does not work for a bitsandbytes-quantised model; here each worker loads
the folder itself. Texts are dealt by length (longest first, round-robin), so every worker gets
the same amount of work, and `SentenceTransformer.encode` batches each share by length.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from eedi_utils.config import RetrievalConfig

logger = logging.getLogger(__name__)


def token_counts(path: str | Path, texts: Sequence[str], max_seq_length: int) -> np.ndarray:
    """Tokens of each text as the embedder will see it (cut at `max_seq_length`)."""
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_seq_length)["input_ids"]
    return np.array([len(ids) for ids in encoded], dtype=np.int64)


def estimate(tokens: np.ndarray, config: RetrievalConfig, n_devices: int) -> str:
    """One line: texts, tokens and, with `tokens_per_second`, the expected wall time."""
    line = f"{len(tokens)} texts, {int(tokens.sum())} tokens on {n_devices} device(s)"
    if config.tokens_per_second > 0:
        minutes = tokens.sum() / (config.tokens_per_second * n_devices) / 60
        line += f": about {minutes:.1f} min at {config.tokens_per_second:g} tokens/s per device"
    return line


def deal(tokens: np.ndarray, n_shares: int) -> list[np.ndarray]:
    """Text positions of each share: longest first, dealt round-robin (equal work)."""
    order = np.argsort(-tokens, kind="stable")
    return [np.sort(order[i::n_shares]) for i in range(n_shares)]


def _encode_share(
    path: str, texts: list[str], config: RetrievalConfig, device: str, tokens: int
) -> np.ndarray:
    from eedi_utils.embedder import encode, load_embedder

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    config = dataclasses.replace(config, device=device, devices=[], show_progress=False)
    model = load_embedder(path, config)
    started = time.perf_counter()
    embeddings = encode(model, texts, config)
    seconds = time.perf_counter() - started
    logger.info(
        "%s: %d texts, %d tokens in %.1f s (%.0f tokens/s)",
        device, len(texts), tokens, seconds, tokens / max(seconds, 1e-9),
    )  # fmt: skip
    return embeddings


def encode_on_devices(
    path: str | Path, texts: Sequence[str], config: RetrievalConfig
) -> np.ndarray:
    """Embeddings of `texts` (in order) computed by one process per `config.devices` entry."""
    devices = config.devices[: max(len(texts), 1)]  # no worker without texts
    tokens = token_counts(path, texts, config.max_seq_length)
    logger.info("encoding with %s: %s", path, estimate(tokens, config, len(devices)))
    shares = deal(tokens, len(devices))
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    with ProcessPoolExecutor(len(devices), mp_context=context) as pool:
        futures = [
            pool.submit(
                _encode_share,
                str(path),
                [texts[i] for i in share],
                config,
                device,
                int(tokens[share].sum()),
            )  # fmt: skip
            for share, device in zip(shares, devices)
        ]
        parts = [future.result() for future in futures]
    dimension = parts[0].shape[1]
    embeddings = np.zeros((len(texts), dimension), dtype=np.float32)
    for share, part in zip(shares, parts):
        embeddings[share] = part
    return embeddings
