"""What this CPU is, read without torch: its name, flags, the threads this process may use,
and whether it runs bf16 natively (which decides `dtype = "auto"` in torch and OpenVINO)."""

from __future__ import annotations

import os
from pathlib import Path

INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
"""CPU flags of int8 dot products: without them int8 kernels fall back to slower paths, and an
int8 model checked on a CPU with them may saturate where they are missing."""
BF16_FLAGS = ("avx512_bf16", "amx_tile")
"""CPU flags of native bf16: the ones torch asks (`torch.cpu._is_avx512_bf16_supported`,
`_is_amx_tile_supported`, torch 2.13 `torch/cpu/__init__.py`). Not any AVX-512: oneDNN's
`_is_mkldnn_bf16_supported` (ideep `has_bf16_type_support`: `avx512_core`) and OpenVINO's
`hasBF16HardwareSupport` (`intel_cpu/src/utils/precision_support.cpp`: `avx512_core`) count
emulation on Skylake too, where bf16 is slower than fp32."""


def _cpuinfo(field: str) -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    return ""


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, 'unknown CPU' where there is none."""
    return _cpuinfo("model name") or "unknown CPU"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    return set(_cpuinfo("flags").split())


def cpu_runs_bf16_fast() -> bool:
    """True where the CPU has bf16 instructions (`BF16_FLAGS`: AVX512-BF16 or AMX) and the
    kernel enables them (/proc/cpuinfo lists a flag only then); elsewhere, and without
    /proc/cpuinfo, False: bf16 there is emulated and slower than fp32."""
    return bool(cpu_flags() & set(BF16_FLAGS))


def cpu_threads(setting: int = 0) -> int:
    """`setting` when above 0, else `$OMP_NUM_THREADS` when set, else the CPUs this process may
    run on (`os.sched_getaffinity`: a cpuset narrows it, a CFS quota does not)."""
    if setting > 0:
        return setting
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return len(os.sched_getaffinity(0))
