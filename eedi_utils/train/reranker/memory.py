"""GPU memory that training the reranker needs on each GPU, estimated from the base's
config.json and [train_reranker] before anything is loaded, and the refusal when it cannot fit.

Where the bytes come from (the pinned sources):
- QLoRA: transformers 5.19 (`quantizers/base.py`, `get_keys_to_not_convert`) leaves the output
  head unquantised; bitsandbytes 0.50.2 stores NF4 at 4 bits with one absmax per 64 weights,
  itself 8-bit with an fp32 one per 256 blocks under double quantisation (`nn/modules.py`,
  `functional.py`); peft 0.21.2's `prepare_model_for_kbit_training` (`utils/other.py`) then
  casts every fp16/bf16 parameter that is not `Params4bit` to fp32: the embeddings and the
  head, 4 bytes a weight (Qwen2.5-14B: 2 x 152064 x 5120 x 4 = 6.2 GB).
- LoRA: the base in [rerank] dtype; the adapter in fp32 (peft's `autocast_adapter_dtype`),
  with its gradient and Adam's two moments: 16 bytes a trained weight. Full fine-tuning: every
  weight in fp32 with the same 12 bytes of training state.
- Activations, for prompts of `max_length` tokens, under gradient checkpointing: each block's
  input kept for the backward pass, plus one block's working set recomputed; without it, every
  block's working set. The loss
  reads the last position's logits only (`logits_to_keep=1`). CUDA's own context, DDP's
  gradient buckets and fragmentation come on top: the estimate is a floor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch

from eedi_utils.config import RerankerTrainConfig
from eedi_utils.train.lora import DECODER_LORA_TARGETS
from eedi_utils.train.reranker.architecture import Architecture

logger = logging.getLogger(__name__)
GIB = 2**30
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
"""4 bits, an 8-bit absmax per 64 weights, an fp32 absmax per 256 of those (double quant)."""
TRAINING_STATE_BYTES = 12
"""An fp32 gradient and Adam's two fp32 moments per trained weight."""


@dataclass(frozen=True)
class MemoryEstimate:
    base: int
    """The frozen base: NF4 blocks and fp32 embeddings (QLoRA), or every weight."""
    trained: int
    """Trained weights' copies, gradients and optimizer moments."""
    activations: int

    @property
    def total(self) -> int:
        return self.base + self.trained + self.activations

    def describe(self) -> str:
        return (
            f"{self.total / GIB:.1f} GiB (base weights {self.base / GIB:.1f}, trained weights "
            f"and optimizer {self.trained / GIB:.1f}, activations {self.activations / GIB:.1f})"
        )


def lora_parameters(arch: Architecture, rank: int, targets: list[str]) -> int:
    """LoRA's A and B over the targeted linear layers of every block."""
    shapes = arch.linears()
    return arch.layers * sum(rank * sum(shapes[name]) for name in targets if name in shapes)


def training_memory(
    arch: Architecture, cfg: RerankerTrainConfig, half_bytes: int = 2
) -> MemoryEstimate:
    """Bytes one GPU needs to train `arch` as `cfg` says; `half_bytes` is the [rerank] dtype's
    size (the base's under LoRA, the activations' under mixed precision)."""
    linear, embeddings = arch.block_linear_parameters, arch.embedding_parameters
    if not cfg.lora_r:
        base, trained = (linear + embeddings) * 4, (linear + embeddings) * TRAINING_STATE_BYTES
        half_bytes = 4 if cfg.mixed_precision == "no" else half_bytes
    else:
        targets = cfg.lora_target_modules or DECODER_LORA_TARGETS
        trained = lora_parameters(arch, cfg.lora_r, targets) * (4 + TRAINING_STATE_BYTES)
        if cfg.load_in_4bit:
            base = int(linear * NF4_BYTES) + embeddings * 4
        else:
            base = (linear + embeddings) * half_bytes
    prompts = cfg.batch_size * (1 if cfg.mode == "listwise" else cfg.group_size)
    tokens = prompts * cfg.max_length
    working_set = tokens * (6 * arch.hidden + 3 * arch.intermediate) * half_bytes
    if cfg.gradient_checkpointing:
        activations = arch.layers * tokens * arch.hidden * half_bytes + working_set
    else:
        activations = arch.layers * working_set
    return MemoryEstimate(base, trained, activations)


def check_training_memory(
    arch: Architecture, cfg: RerankerTrainConfig, device: int, half_bytes: int = 2
) -> MemoryEstimate:
    """Log the estimate; refuse, with the numbers and what fits, when it exceeds the free
    memory of CUDA `device` (`torch.cuda.mem_get_info`)."""
    estimate = training_memory(arch, cfg, half_bytes)
    free, total = torch.cuda.mem_get_info(device)
    logger.info(
        "training the reranker needs about %s per GPU; GPU %d has %.1f GiB free of %.1f",
        estimate.describe(), device, free / GIB, total / GIB,
    )  # fmt: skip
    if estimate.total > free:
        plain = training_memory(arch, replace(cfg, load_in_4bit=False), half_bytes=2)
        raise ValueError(
            f"training this reranker needs about {estimate.describe()} on each GPU; "
            f"{torch.cuda.get_device_name(device)} {device} has {free / GIB:.1f} GiB free of "
            f"{total / GIB:.1f}. Lower [train_reranker] batch_size or max_length, or take a "
            f"smaller base; LoRA on a bf16 base (no 4-bit) needs about {plain.total / GIB:.0f} "
            "GiB: one GPU of 80 GB or more, as the top teams trained their 14B rerankers"
        )
    return estimate
