"""Every dtype decision of the kit under the T4 and H200 profiles (`gpu_profiles.py`): torch's
own `is_bf16_supported` says True on both, and the kit must still choose fp16 on the T4."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from gpu_profiles import T4, apply
from transformers.utils import is_torch_bf16_gpu_available

from eedi_utils.devices import cuda_runs_bf16_natively, resolve_dtype
from eedi_utils.train.retriever.model import mixed_precision_flags

REPO = Path(__file__).resolve().parents[1]


def test_the_profiles_report_what_torch_and_transformers_say_on_the_real_gpus(gpu) -> None:
    assert torch.cuda.is_available() and torch.cuda.get_device_name() == gpu.name
    # torch 2.13 torch/cuda/__init__.py: True on sm75 too, by emulation
    assert torch.cuda.is_bf16_supported()
    assert is_torch_bf16_gpu_available()  # transformers 5.19 utils/import_utils.py
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    assert native == (gpu.capability >= (8, 0))


def test_auto_dtype_is_fp16_on_a_t4_and_bf16_on_an_h200(gpu) -> None:
    half = torch.bfloat16 if gpu.capability >= (8, 0) else torch.float16
    assert cuda_runs_bf16_natively("cuda") == (half == torch.bfloat16)
    assert cuda_runs_bf16_natively("cuda:1") == (half == torch.bfloat16)
    assert resolve_dtype("auto", "cuda") == half
    assert resolve_dtype("auto", "cuda:1") == half
    expected = {"bf16": half == torch.bfloat16, "fp16": half == torch.float16}
    assert mixed_precision_flags("auto", "cuda") == expected
    assert resolve_dtype("float32", "cuda") == torch.float32  # an explicit choice stands


def test_4bit_loading_computes_in_the_gpus_half_dtype(gpu, monkeypatch) -> None:
    import eedi_utils.devices as devices

    monkeypatch.setattr(devices, "require", lambda *_: None)  # bitsandbytes: GPU machines only

    config = devices.quantization_kwargs(4, "cuda")["quantization_config"]
    expected = torch.bfloat16 if gpu.capability >= (8, 0) else torch.float16
    assert config.bnb_4bit_compute_dtype == expected


def test_the_gpu_checks_bf16_step_is_skipped_on_a_t4(tmp_path, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    checks = gpu_check.Checks(tmp_path, allow_cpu=False)  # its tiny models, built on the CPU
    apply(monkeypatch, T4)
    checks.cuda = True
    with pytest.raises(gpu_check.Skip, match="Tesla T4 has no bf16 tensor cores"):
        checks.retriever_lora("bf16")


def test_the_rerank_stage_picks_vllm_on_either_gpu(gpu) -> None:
    from eedi_utils.config import RerankConfig
    from eedi_utils.rerank.stage import backend_name

    assert backend_name(RerankConfig()) == "vllm"
    assert backend_name(RerankConfig(backend="transformers")) == "transformers"


def test_a_gptq_checkpoint_in_transformers_computes_in_the_gpus_half_dtype(
    gpu, tmp_path, monkeypatch
) -> None:
    """AutoRound's kernels compute in fp16 or bf16 only (`rerank/backends.py`): an fp32 ask
    becomes fp16 on the T4, bf16 on the H200."""
    import json

    import eedi_utils.rerank.backends as backends

    (tmp_path / "config.json").write_text(
        json.dumps({"quantization_config": {"quant_method": "gptq"}})
    )
    asked = {}
    record = classmethod(lambda cls, path, **kwargs: asked.update(kwargs))
    monkeypatch.setattr(backends.AutoModelForCausalLM, "from_pretrained", record)
    backends.load_causal_lm(tmp_path, torch.float32, "cuda")
    expected = torch.bfloat16 if gpu.capability >= (8, 0) else torch.float16
    assert asked["dtype"] == expected and asked["device_map"] == "cuda"
