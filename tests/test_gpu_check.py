"""scripts/gpu_check.py runs: on a machine without CUDA (like CI's) its CPU-able checks pass
and every CUDA check is skipped with its reason; on a GPU it is the device check itself."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

from eedi_utils.rerank.engine import engine_arguments

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_reports_every_check(tmp_path: Path) -> None:
    out = tmp_path / "table.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--allow-cpu", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["check"]: row for row in json.loads(out.read_text())["rows"]}
    assert len(rows) == 10
    assert "| check | status | s | detail |" in result.stdout
    if torch.cuda.is_available():
        return
    for name in ("retriever LoRA fp32 (CPU)", "reranker listwise LoRA", "reranker pointwise LoRA",
                 "embedder split over devices", "reranker GPTQ 4-bit"):  # fmt: skip
        assert rows[name]["status"] == "passed", rows[name]
    for name in ("retriever LoRA fp16", "retriever LoRA bf16", "reranker QLoRA 4-bit",
                 "embedder 4/8-bit", "vLLM vs transformers"):  # fmt: skip
        assert rows[name] == {**rows[name], "status": "skipped", "detail": "no CUDA GPU"}


def test_the_vllm_checks_model_has_heads_triton_attention_takes(
    request, tmp_path: Path, monkeypatch
) -> None:
    """On a T4 the vLLM checks run with TRITON_ATTN forced (rerank/engine.py); vLLM 0.19.1
    raises when a forced backend fails validation (vllm/platforms/cuda.py
    get_attn_backend_cls), and TRITON_ATTN's rule is `head_size >= 32`
    (vllm/v1/attention/backends/triton_attn.py supports_head_size). The check is run with
    backends that record the folder and engine arguments vLLM would get."""
    import sys
    import types

    import numpy as np

    import eedi_utils.rerank.backends as backends

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    checks = gpu_check.Checks(tmp_path, allow_cpu=False)  # models built on the CPU
    request.getfixturevalue("t4")  # then the T4 x2 that the engine's arguments are for
    checks.cuda = True
    given = []

    class Recording(backends.TransformersBackend):
        def __init__(self, path, config, device="cpu"):
            super().__init__(path, config, "cpu")

    class RecordingVllm:
        def __init__(self, path, config):
            capability, gpus = torch.cuda.get_device_capability(), torch.cuda.device_count()
            given.append((Path(path), engine_arguments(path, config, capability, gpus)))
            self.transformers = Recording(path, config)

        def choice_logprobs(self, prompts, labels) -> np.ndarray:
            return self.transformers.choice_logprobs(prompts, labels)

    monkeypatch.setattr(backends, "TransformersBackend", Recording)
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    fake = types.ModuleType("eedi_utils.rerank.vllm")
    fake.VllmBackend = RecordingVllm
    monkeypatch.setitem(sys.modules, "eedi_utils.rerank.vllm", fake)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    checks.vllm_against_transformers()
    [(folder, arguments)] = given
    assert arguments["attention_backend"] == "TRITON_ATTN"
    config = json.loads((folder / "config.json").read_text())
    assert config["hidden_size"] // config["num_attention_heads"] >= 32  # vLLM's Qwen2 head_dim
