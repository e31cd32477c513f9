"""LoRA on a decoder-only model: last-token pooling, fp32 adapters on half-precision bases,
adapters merged into a plain folder (a QLoRA adapter into the base reloaded unquantised)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from eedi_utils.config import RetrievalConfig, TrainConfig
from eedi_utils.devices import resolve_dtype
from eedi_utils.embedder import encode, load_embedder
from eedi_utils.train.lora import load_lora, lora_targets, merge_lora
from eedi_utils.train.retriever.model import build_model, merged_model

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
    assert (adapted * base).sum(axis=1).min() < 0.99  # the adapter changes the embeddings

    merged = merge_lora(model)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    merged.save(str(tmp_path / "merged"))
    reloaded = encode(load_embedder(tmp_path / "merged", RETRIEVAL), TEXTS, RETRIEVAL)
    assert (reloaded * adapted).sum(axis=1).min() > 0.999


def test_targets_per_architecture() -> None:
    assert lora_targets("bert", []) == ["query", "key", "value", "dense"]
    assert "down_proj" in lora_targets("qwen2", [])
    assert lora_targets("unknown-arch", []) == "all-linear"
    assert lora_targets("bert", ["query"]) == ["query"]


def test_qlora_is_refused_without_cuda(tiny_qwen) -> None:
    with pytest.raises(ValueError, match="4-bit loading .* needs a CUDA GPU"):
        build_model(TrainConfig(base_model=str(tiny_qwen), lora_r=4, load_in_4bit=True), 64, "cpu")


@pytest.fixture(params=[torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def half_qwen(request, tiny_qwen, tmp_path):
    """The tiny decoder saved in bf16 or fp16, as real checkpoints are."""
    folder = tmp_path / "half"
    AutoModel.from_pretrained(tiny_qwen, dtype=request.param).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_qwen).save_pretrained(folder)
    return folder, request.param


def trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def test_adapter_trains_in_fp32_on_a_half_precision_base(half_qwen) -> None:
    """peft 0.21.2: `add_adapter` goes through `inject_adapter_in_model` (`mapping.py`), which
    gives the adapter the base layer's dtype; only `PeftModel.__init__` (`peft_model.py`)
    upcasts. transformers 5.19 `from_pretrained` loads `dtype="auto"`: as saved."""
    folder, dtype = half_qwen
    model = build_model(TrainConfig(base_model=str(folder), lora_r=4), 64, "cpu")
    assert model[0].auto_model.layers[0].mlp.down_proj.base_layer.weight.dtype == dtype
    assert trainable(model) and {p.dtype for p in trainable(model).values()} == {torch.float32}


def test_fp16_gradients_of_the_adapter_unscale(half_qwen) -> None:
    """torch 2.13 `torch/amp/grad_scaler.py`: `unscale_` raises "Attempting to unscale FP16
    gradients." on any fp16 gradient; the fp16 Trainer unscales every step (AMP)."""
    folder, dtype = half_qwen
    model = build_model(TrainConfig(base_model=str(folder), lora_r=4), 64, "cpu")
    params = trainable(model)
    before = {n: p.detach().clone() for n, p in params.items()}
    optimizer = torch.optim.AdamW(params.values(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=16.0)  # no fp16 overflow: a step
    embeddings = model(model.tokenize(TEXTS))["sentence_embedding"]
    loss = (embeddings[0] * embeddings[1:]).float().sum()
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # raises on fp16 gradients
    scaler.step(optimizer)
    assert any(not torch.equal(p, before[n]) for n, p in params.items() if "lora_B" in n)


def test_resumed_adapter_is_exact_and_fp32(tiny_qwen, tmp_path) -> None:
    """transformers 5.19 `load_adapter` (`integrations/peft.py`) injects the adapter like
    `add_adapter`, in the base's dtype, and loads the saved weights into it (bf16: rounded)."""
    folder = tmp_path / "bf16"
    AutoModel.from_pretrained(tiny_qwen, dtype=torch.bfloat16).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_qwen).save_pretrained(folder)
    config = TrainConfig(base_model=str(folder), lora_r=4)
    model = build_model(config, 64, "cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # values bf16 cannot hold
        for parameter in trainable(model).values():
            parameter.copy_(0.1 + torch.rand(parameter.shape, generator=generator) * 1e-3)
    model.save(str(tmp_path / "checkpoint"))
    resumed = build_model(TrainConfig(base_model=str(folder)), 64, "cpu")
    load_lora(resumed, tmp_path / "checkpoint")
    saved, loaded = trainable(model), trainable(resumed)
    assert loaded.keys() == saved.keys()
    assert all(
        torch.equal(loaded[n], p) and loaded[n].dtype == torch.float32 for n, p in saved.items()
    )


class Loaded(Exception):
    """Stops `from_pretrained` once its arguments are recorded (nothing goes to CUDA here)."""


@pytest.mark.parametrize("profile", ["t4", "h200"])
def test_qlora_merges_into_the_base_reloaded_in_half_precision(
    profile, request, tiny_qwen, monkeypatch
) -> None:
    """peft 0.21.2 `tuners/lora/bnb.py`: `Linear4bit.merge` dequantises, adds the delta and
    quantises the sum again ("may get different generations due to rounding errors")."""
    gpu = request.getfixturevalue(profile)
    trained = build_model(TrainConfig(base_model=str(tiny_qwen), lora_r=4), 64, "cpu")
    recorded = {}

    def from_pretrained(path, **kwargs):
        recorded.update(kwargs)
        raise Loaded

    monkeypatch.setattr(AutoModel, "from_pretrained", from_pretrained)
    qlora = TrainConfig(base_model=str(tiny_qwen), lora_r=4, load_in_4bit=True)
    with pytest.raises(Loaded):
        merged_model(trained, qlora, 64, "cuda")
    assert "quantization_config" not in recorded
    assert recorded["dtype"] == (torch.float16 if gpu.capability < (8, 0) else torch.bfloat16)


def test_the_qlora_merge_loads_its_base_on_the_cpu(t4, tiny_qwen, monkeypatch) -> None:
    """A 7B base in fp16 alone fills a 14.75 GiB T4 that still holds the 4-bit model: the base
    for the merge is loaded on the CPU (in the T4's fp16) and saved from there."""
    import eedi_utils.train.retriever.model as model_module

    loads = []

    def recording(config, max_seq_length, device, model_dataset="", dtype=None):
        loads.append((device, dtype, config.load_in_4bit))
        raise Loaded

    monkeypatch.setattr(model_module, "build_model", recording)
    qlora = TrainConfig(base_model=str(tiny_qwen), lora_r=4, load_in_4bit=True)
    with pytest.raises(Loaded):
        model_module.merged_model(object(), qlora, 64, "cuda")
    assert loads == [("cpu", torch.float16, False)]


def test_qlora_merge_adds_the_adapter_to_the_fresh_base(tiny_qwen, monkeypatch) -> None:
    monkeypatch.setattr("eedi_utils.devices.cpu_runs_bf16_fast", lambda: False)  # fp32 on CPU
    assert resolve_dtype("auto", "cpu") == torch.float32
    config = TrainConfig(base_model=str(tiny_qwen), lora_r=4, load_in_4bit=True)
    trained = build_model(TrainConfig(base_model=str(tiny_qwen), lora_r=4), 64, "cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in trained.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    layer = trained[0].auto_model.layers[0].mlp.down_proj
    scaling = layer.scaling["default"]
    expected = (
        layer.base_layer.weight
        + scaling * layer.lora_B["default"].weight @ layer.lora_A["default"].weight
    )
    adapted = encode(trained, TEXTS, RETRIEVAL)
    merged = merged_model(trained, config, 64, "cpu")
    assert merged is not trained and not any("lora_" in n for n, _ in merged.named_parameters())
    merged_weight = merged[0].auto_model.layers[0].mlp.down_proj.weight
    assert merged_weight.dtype == torch.float32
    assert torch.allclose(merged_weight, expected, atol=1e-6)
    assert (encode(merged, TEXTS, RETRIEVAL) * adapted).sum(axis=1).min() > 0.999
