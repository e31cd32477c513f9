"""scripts/gpu_check.py runs: on a machine without CUDA (like CI's) its CPU-able checks pass
and every CUDA check is skipped with its reason; on a GPU it is the device check itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

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
