"""GPU profiles: `torch.cuda` made to report a Kaggle T4 x2 or an H200 as the real ones do, so
every GPU decision of the kit is tested on a CPU machine.

Only the device queries are replaced; torch's own `is_bf16_supported` (torch 2.13,
`torch/cuda/__init__.py`) runs unchanged on top of them. On sm75 its capability test fails
(`major >= 8`), and with `including_emulation=True`, the default, it falls back to
`_check_bf16_tensor_supported`, which creates a bf16 tensor on the device: that succeeds on a
T4, so torch answers **True** there although the T4 has no bf16 tensor cores. transformers
5.19's `is_torch_bf16_gpu_available` (`utils/import_utils.py`) just returns that answer.

Device facts: a T4 is compute capability 7.5 with 40 SMs and 14.75 GiB as the CUDA runtime
reports it (TensorFlow's device log of a Tesla T4, NVIDIA/DALI#1813); Kaggle gives two. An
H200 is capability 9.0, 132 SMs, 143771 MiB (nvidia-smi); the device tool lends one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from accelerate.state import AcceleratorState

GIB = 2**30


@dataclass(frozen=True)
class GpuProfile:
    name: str
    capability: tuple[int, int]
    total_memory: int
    multi_processor_count: int
    count: int

    def properties(self, device: int | str | torch.device | None = None) -> SimpleNamespace:
        """What `torch.cuda.get_device_properties` returns, the fields the kit and its
        libraries read."""
        major, minor = self.capability
        return SimpleNamespace(
            name=self.name,
            major=major,
            minor=minor,
            total_memory=self.total_memory,
            multi_processor_count=self.multi_processor_count,
        )


T4 = GpuProfile("Tesla T4", (7, 5), int(14.75 * GIB), 40, count=2)
H200 = GpuProfile("NVIDIA H200", (9, 0), 143_771 * 2**20, 132, count=1)
PROFILES = {"t4": T4, "h200": H200}


def apply(monkeypatch: pytest.MonkeyPatch, profile: GpuProfile, free: int | None = None) -> None:
    """Make `torch.cuda` report `profile` (`free` bytes free on each device, all by default);
    nothing is ever placed on it."""
    cuda = torch.cuda
    free = profile.total_memory if free is None else free
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "device_count", lambda: profile.count)
    monkeypatch.setattr(cuda, "current_device", lambda: 0)
    monkeypatch.setattr(cuda, "get_device_properties", profile.properties)
    monkeypatch.setattr(cuda, "get_device_capability", lambda device=None: profile.capability)
    monkeypatch.setattr(cuda, "get_device_name", lambda device=None: profile.name)
    monkeypatch.setattr(cuda, "mem_get_info", lambda device=None: (free, profile.total_memory))
    monkeypatch.setattr(cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(cuda, "set_device", lambda device: None)
    # creating a bf16 tensor succeeds on every CUDA GPU, sm75 included (emulated)
    monkeypatch.setattr(cuda, "_check_bf16_tensor_supported", lambda device: True)


def profiled(monkeypatch: pytest.MonkeyPatch, profile: GpuProfile) -> Iterator[GpuProfile]:
    """`profile` for one test. accelerate makes its process state once, on first use, from
    the device it sees (1.15 `state.py`): it is reset on entry and again once the real CPU
    is back, so no state made under a profile outlives it."""
    AcceleratorState._reset_state(reset_partial_state=True)
    apply(monkeypatch, profile)
    yield profile
    monkeypatch.undo()
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(params=sorted(PROFILES))
def gpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[GpuProfile]:
    """Each profile in turn."""
    yield from profiled(monkeypatch, PROFILES[request.param])


@pytest.fixture()
def t4(monkeypatch: pytest.MonkeyPatch) -> Iterator[GpuProfile]:
    yield from profiled(monkeypatch, T4)


@pytest.fixture()
def h200(monkeypatch: pytest.MonkeyPatch) -> Iterator[GpuProfile]:
    yield from profiled(monkeypatch, H200)
