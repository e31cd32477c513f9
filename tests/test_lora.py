"""LoRA on a decoder-only model: last-token pooling, adapters merged into a plain folder."""

from __future__ import annotations

import pytest
import torch

from eedi_utils.config import RetrievalConfig, TrainConfig
from eedi_utils.embedder import encode, load_embedder
from eedi_utils.train.lora import lora_targets, merge_lora
from eedi_utils.train.retriever.model import build_model

TEXTS = [
    "Believes a fraction gets bigger when its denominator grows",
    "What is \\( \\frac{1}{2}+\\frac{1}{3} \\)?",
    "Adds the denominators",
    "x",
]
RETRIEVAL = RetrievalConfig(show_progress=False, dtype="float32", batch_size=2)


def test_decoder_gets_last_token_pooling_and_lora(tiny_qwen) -> None:
    model = build_model(TrainConfig(base_model=str(tiny_qwen), lora_r=4), 64, "cpu")
    assert model[1].get_config_dict()["pooling_mode"] == "lasttoken"
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("gate_proj" in n for n in trainable)


def test_merged_model_matches_adapter_model(tiny_qwen, tmp_path) -> None:
    base = encode(build_model(TrainConfig(base_model=str(tiny_qwen)), 64, "cpu"), TEXTS, RETRIEVAL)
    model = build_model(TrainConfig(base_model=str(tiny_qwen), lora_r=4), 64, "cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # LoRA starts as a no-op (B = 0); give it a real effect
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    adapted = encode(model, TEXTS, RETRIEVAL)
    assert (adapted * base).sum(dim=1).min() < 0.99  # the adapter changes the embeddings

    merged = merge_lora(model)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    merged.save(str(tmp_path / "merged"))
    reloaded = encode(load_embedder(tmp_path / "merged", RETRIEVAL), TEXTS, RETRIEVAL)
    assert (reloaded * adapted).sum(dim=1).min() > 0.999


def test_targets_per_architecture() -> None:
    assert lora_targets("bert", []) == ["query", "key", "value", "dense"]
    assert "down_proj" in lora_targets("qwen2", [])
    assert lora_targets("unknown-arch", []) == "all-linear"
    assert lora_targets("bert", ["query"]) == ["query"]


def test_qlora_is_refused_without_cuda(tiny_qwen) -> None:
    with pytest.raises(ValueError, match="4-bit loading .* needs a CUDA GPU"):
        build_model(TrainConfig(base_model=str(tiny_qwen), lora_r=4, load_in_4bit=True), 64, "cpu")
