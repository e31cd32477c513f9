"""Where and in which precision a model runs: the device, the dtype by hardware, and 4/8-bit
loading arguments; shared by the embedders, their training and the LLM stage."""

from __future__ import annotations

import torch

from eedi_utils.cpu import cpu_runs_bf16_fast
from eedi_utils.extras import require

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str) -> str:
    """'auto' picks the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def cuda_runs_bf16_natively(device: str | int | None = None) -> bool:
    """True from compute capability 8.0 (Ampere) on, where bf16 has tensor cores. Not
    `torch.cuda.is_bf16_supported()`: by default it counts emulation, and a bf16 tensor can be
    made on any CUDA GPU, so it is True on a T4 (sm75) as well (torch 2.13,
    `torch/cuda/__init__.py`; transformers' `is_torch_bf16_gpu_available` returns the same)."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """'auto': bf16 on GPUs and CPUs that run it natively, fp16 on older GPUs (T4), else fp32."""
    if name != "auto":
        if name not in DTYPES:
            raise ValueError(f"dtype must be 'auto' or one of {sorted(DTYPES)}, got {name!r}")
        return DTYPES[name]
    if device.startswith("cuda"):
        return torch.bfloat16 if cuda_runs_bf16_natively(device) else torch.float16
    return torch.bfloat16 if cpu_runs_bf16_fast() else torch.float32


def quantization_kwargs(bits: int, device: str) -> dict:
    """`from_pretrained` arguments loading the weights in 4 bits (NF4, double quantisation) or
    8 bits with bitsandbytes, computing in the device's half dtype; CUDA only."""
    if bits not in (4, 8):
        raise ValueError(f"load_in_bits must be 0, 4 or 8, got {bits}")
    if not device.startswith("cuda"):
        raise ValueError(f"{bits}-bit loading (bitsandbytes) needs a CUDA GPU, not {device!r}")
    require("bitsandbytes", f"{bits}-bit loading")
    from transformers import BitsAndBytesConfig

    placed = {"device_map": {"": device}}  # quantised straight onto its GPU, not cuda:0
    if bits == 8:
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True), **placed}
    return {
        **placed,
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=resolve_dtype("auto", device),
        ),
    }
