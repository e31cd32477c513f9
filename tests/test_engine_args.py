"""[rerank]'s vLLM arguments on a T4 (sm75), on newer GPUs and on vLLM's CPU build."""

from __future__ import annotations

import pytest

from eedi_utils.config import RerankConfig
from eedi_utils.rerank.engine import engine_arguments

T4, A100 = (7, 5), (8, 0)


def test_t4_defaults_follow_turing() -> None:
    arguments = engine_arguments("m", RerankConfig(), T4, gpus=2)
    assert arguments["dtype"] == "half"  # no bf16 before sm80
    assert arguments["attention_backend"] == "TRITON_ATTN"  # FlashAttention needs sm80
    assert arguments["tensor_parallel_size"] == 2  # both T4s
    assert arguments["enforce_eager"] is True
    assert arguments["quantization"] is None  # AWQ/GPTQ from the checkpoint's config


def test_newer_gpus_and_the_cpu_build_keep_vllms_choices() -> None:
    for capability in (A100, None):
        arguments = engine_arguments("m", RerankConfig(), capability, gpus=1)
        assert arguments["dtype"] == "auto"
        assert "attention_backend" not in arguments
        assert arguments["tensor_parallel_size"] == 1


def test_explicit_settings_win_and_bf16_on_a_t4_is_refused() -> None:
    config = RerankConfig(
        dtype="float16", tensor_parallel_size=1, attention_backend="FLEX_ATTENTION",
        quantization="awq",
    )  # fmt: skip
    arguments = engine_arguments("m", config, T4, gpus=2)
    assert (arguments["dtype"], arguments["tensor_parallel_size"]) == ("half", 1)
    assert arguments["attention_backend"] == "FLEX_ATTENTION"
    assert arguments["quantization"] == "awq"
    with pytest.raises(ValueError, match="no bf16"):
        engine_arguments("m", RerankConfig(dtype="bfloat16"), T4, gpus=2)


def test_max_logprobs_covers_the_widest_window() -> None:
    """vLLM 0.19.1 caps a request's `logprobs` at `max_logprobs`, 20 unless set
    (vllm/config/model.py `max_logprobs: int = 20`; vllm/sampling_params.py
    `_validate_logprobs` raises above it): a [1, 25] window asks for 25."""
    wide = RerankConfig(windows=[[1, 25], [8, 17]])
    assert engine_arguments("m", wide, T4, gpus=2)["max_logprobs"] == 25
    assert engine_arguments("m", RerankConfig(), None, gpus=1)["max_logprobs"] == 10
    pointwise = RerankConfig(mode="pointwise", windows=[])
    assert engine_arguments("m", pointwise, A100, gpus=1)["max_logprobs"] == 2  # Yes, No
