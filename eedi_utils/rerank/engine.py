"""The vLLM engine's arguments from [rerank], resolved for the GPU at hand. Kept apart from
`rerank/vllm.py` (which imports vLLM) so the rules are tested without a GPU.

Turing (sm75: Kaggle's T4) facts they follow:
- no bf16: dtype 'auto' becomes fp16 ('half') before sm80;
- vLLM's V1 engine has no FlashAttention there (it needs sm80): TRITON_ATTN is chosen;
- the quantisation is left to the checkpoint's config: vLLM 0.19.1 upgrades a 4-bit symmetric
  GPTQ checkpoint with groups of 128 (what `train-reranker` writes) to `gptq_marlin`, a 4-bit
  AWQ one to `awq_marlin`, both from sm75 (`get_min_capability` 75); `quantization = "gptq"`
  forces the plain GPTQ kernel (sm60) as a fallback;
- eager mode (no CUDA graphs) keeps the 15 GB per T4 for weights and KV cache;
- tensor parallelism over every visible GPU (2 on T4 x2) by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eedi_utils.config import RerankConfig

AMPERE = (8, 0)
KAGGLE_GPUS = 2  # the T4 x2 a submission runs on
POINTWISE_CHOICES = 2  # Yes, No (rerank/prompts.py; not imported: it needs pandas, which
# vLLM's environment in the tests lacks)
DTYPES = {"float16": "half", "bfloat16": "bfloat16", "float32": "float32"}


def tensor_parallel_size(config: RerankConfig, gpus: int) -> int:
    """GPUs one engine spans: the configured number, else every visible one (at least 1)."""
    return config.tensor_parallel_size or max(gpus, 1)


def inference_tensor_parallel(config: RerankConfig, gpus: int) -> list[int]:
    """The tensor parallel sizes a checkpoint made here must load under: the configured one,
    else both every GPU here and Kaggle's two T4s (a model quantised on one big GPU is
    submitted on the T4 x2)."""
    if config.tensor_parallel_size:
        return [config.tensor_parallel_size]
    return sorted({tensor_parallel_size(config, gpus), KAGGLE_GPUS})


def engine_arguments(
    path: str | Path, config: RerankConfig, capability: tuple[int, int] | None, gpus: int
) -> dict[str, Any]:
    """`vllm.LLM(**...)` for `config` on GPUs of compute `capability`, `gpus` of them visible
    (capability None: no CUDA GPU, as with vLLM's CPU build; vLLM's own choices stand)."""
    before_ampere = capability is not None and capability < AMPERE
    if config.dtype == "auto":
        dtype = "half" if before_ampere else "auto"
    elif config.dtype in DTYPES:
        dtype = DTYPES[config.dtype]
        if dtype == "bfloat16" and before_ampere:
            raise ValueError("[rerank] dtype bfloat16: GPUs before sm80 (a T4) have no bf16")
    else:
        raise ValueError(f"[rerank] dtype must be auto, {', '.join(DTYPES)}: {config.dtype!r}")
    arguments: dict[str, Any] = {
        "model": str(path),
        "dtype": dtype,
        "tensor_parallel_size": tensor_parallel_size(config, gpus),
        "max_model_len": config.max_model_len,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "enforce_eager": config.enforce_eager,
        "quantization": config.quantization or None,
        "enable_prefix_caching": True,  # windows of one row share the question's tokens
        "logprobs_mode": "processed_logprobs",  # after allowed_token_ids: over the choices
        "max_logprobs": choice_tokens(config),  # vLLM's default, 20, refuses wider windows
        "seed": 0,
    }
    backend = config.attention_backend
    if backend == "auto":
        backend = "TRITON_ATTN" if before_ampere else ""
    if backend:
        arguments["attention_backend"] = backend
    return arguments


def choice_tokens(config: RerankConfig) -> int:
    """The most tokens one prompt scores: the widest window's labels (listwise) or Yes/No;
    `choice_logprobs` asks vLLM for that many log-probabilities."""
    return max([POINTWISE_CHOICES, *(last - first + 1 for first, last in config.windows)])
