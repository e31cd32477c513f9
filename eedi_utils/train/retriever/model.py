"""The model a training run starts from, and the mixed precision it trains in."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer import modules
from transformers import AutoConfig

from eedi_utils.config import TrainConfig
from eedi_utils.cpu_embedder import refuse_export
from eedi_utils.devices import quantization_kwargs, resolve_dtype
from eedi_utils.embedder import default_model_path
from eedi_utils.inputs import resolve_input_path
from eedi_utils.train.lora import DECODER_TYPES, add_lora, merge_lora


def base_model_path(config: TrainConfig, model_dataset: str = "") -> Path:
    """The folder of `[train] base_model`, else the bundled default model. On Kaggle a base
    model that is not here is looked up in the inputs, in `model_dataset` first."""
    if config.base_model:
        return resolve_input_path(config.base_model, dataset=model_dataset)
    return default_model_path()


def build_model(
    config: TrainConfig,
    max_seq_length: int,
    device: str,
    model_dataset: str = "",
    dtype: torch.dtype | None = None,
) -> SentenceTransformer:
    """Load the base model (a sentence-transformers folder, or a plain transformers folder
    given a pooling layer) in `dtype` (None: as saved), add LoRA if asked (`base_model_path`
    says where it is)."""
    path = base_model_path(config, model_dataset)
    refuse_export(path, "training")
    model_kwargs = quantization_kwargs(4, device) if config.load_in_4bit else {}
    if dtype is not None:
        model_kwargs["dtype"] = dtype
    if (path / "modules.json").exists():
        model = SentenceTransformer(
            str(path), device=device, local_files_only=True, model_kwargs=model_kwargs
        )
    else:
        model_type = AutoConfig.from_pretrained(path, local_files_only=True).model_type
        pooling = config.pooling
        if pooling == "auto":
            pooling = "lasttoken" if model_type in DECODER_TYPES else "mean"
        transformer = modules.Transformer(
            str(path), max_seq_length=max_seq_length, model_kwargs=model_kwargs
        )
        if transformer.tokenizer.pad_token is None:
            transformer.tokenizer.pad_token = transformer.tokenizer.eos_token
        model = SentenceTransformer(
            modules=[
                transformer,
                modules.Pooling(transformer.get_embedding_dimension(), pooling),
                modules.Normalize(),
            ],
            device=device,
        )
    model.max_seq_length = min(max_seq_length, model.max_seq_length or max_seq_length)
    if config.lora_r:
        add_lora(model, config)
    return model


def merged_model(
    model: SentenceTransformer,
    config: TrainConfig,
    max_seq_length: int,
    device: str,
    model_dataset: str = "",
) -> SentenceTransformer:
    """The trained model with its adapter folded into the base weights. A QLoRA adapter is
    merged into the base loaded again unquantised, in `device`'s half dtype (`resolve_dtype`
    'auto': fp16 on a T4, bf16 from sm80), not into the 4-bit weights it trained on: peft's
    `Linear4bit.merge` dequantises, adds and quantises the sum again, with a warning of rounding
    errors (peft 0.21.2, `tuners/lora/bnb.py`). That base is loaded and merged on the CPU (a 7B
    in fp16 alone fills a T4) and saved from there; with validation rows the run then loads
    the saved folder as predict does."""
    if not config.load_in_4bit:
        return merge_lora(model)
    unquantized = replace(config, lora_r=0, load_in_4bit=False)
    dtype = resolve_dtype("auto", device)
    base = build_model(unquantized, max_seq_length, "cpu", model_dataset, dtype=dtype)
    return merge_lora(model, into=base)


def mixed_precision_flags(choice: str, device: str) -> dict[str, bool]:
    """bf16/fp16 flags for the trainer: 'auto' uses bf16 only where it runs natively."""
    if choice == "auto":
        dtype = resolve_dtype("auto", device)
        choice = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "no")
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"}
