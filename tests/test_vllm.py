"""Against a real vLLM (the CPU build, in its own environment: $EEDI_VLLM_PYTHON, made by
scripts/vllm_env.sh; .ci/run sets it): the offline engine scores the same prompts as the
transformers backend, and `eedi paraphrase` / `eedi synthesize` run against vLLM's
OpenAI-compatible server serving SmolLM2-135M-Instruct. SmolLM2's prose is poor: these tests
check the plumbing."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eedi_utils.config import RerankConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.generate.cache import JsonlCache
from eedi_utils.rerank.backends import TransformersBackend, chat_ids, single_token_ids
from eedi_utils.rerank.scoring import LABELS, listwise_messages

PROJECT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = os.environ.get("EEDI_VLLM_PYTHON", "")
pytestmark = pytest.mark.skipif(
    not VLLM_PYTHON,
    reason="$EEDI_VLLM_PYTHON is not set: make vLLM's CPU environment with "
    "scripts/vllm_env.sh DIR and export EEDI_VLLM_PYTHON=DIR/bin/python (.ci/run does)",
)
VLLM_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # the engine in-process: scripts need no main guard
    "HF_HUB_OFFLINE": "1",
    "PYTHONPATH": str(PROJECT),
}
ENGINE_SCRIPT = """
import json, sys
from eedi_utils.config import RerankConfig
from eedi_utils.rerank.vllm import VllmBackend
job = json.load(open(sys.argv[1]))
config = RerankConfig(**{"dtype": "float32", "max_model_len": 2048, **job.get("config", {})})
backend = VllmBackend(job["model"], config)
scores = backend.choice_logprobs(job["prompts"], job["labels"]).tolist()
texts = backend.generate(job["prompts"], 8)
json.dump({"scores": scores, "texts": texts}, open(sys.argv[2], "w"))
"""


def test_vllm_engine_scores_like_transformers(tmp_path, sample, smollm2) -> None:
    data = CompetitionData(sample)
    rows = labelled(data.train()).head(3)
    names = data.misconceptions["MisconceptionName"].tolist()
    backend = TransformersBackend(smollm2, RerankConfig(dtype="float32"), "cpu")
    prompts = [
        chat_ids(backend.tokenizer, listwise_messages(row, names[3 * i : 3 * i + 5]))
        for i, (_, row) in enumerate(rows.iterrows())
    ]
    labels = single_token_ids(backend.tokenizer, list(LABELS[:5]))
    job = {"model": str(smollm2), "prompts": prompts, "labels": labels}
    from_vllm = run_engine(tmp_path, job)
    np.testing.assert_allclose(
        from_vllm["scores"], backend.choice_logprobs(prompts, labels), atol=1e-3
    )
    assert from_vllm["texts"] == backend.generate(prompts, 8)  # greedy: the same tokens


def test_vllm_engine_scores_a_25_wide_window(tmp_path, sample, smollm2) -> None:
    """A [1, 25] window (training's widest list) asks vLLM for 25 log-probabilities, above
    vLLM's default `max_logprobs` of 20 (vllm/config/model.py; vllm/sampling_params.py
    `_validate_logprobs` raises above it): `engine_arguments` raises the cap to the window."""
    data = CompetitionData(sample)
    row = labelled(data.train()).iloc[0]
    names = data.misconceptions["MisconceptionName"].tolist()
    backend = TransformersBackend(smollm2, RerankConfig(dtype="float32"), "cpu")
    prompts = [chat_ids(backend.tokenizer, listwise_messages(row, names[:25]))]
    labels = single_token_ids(backend.tokenizer, list(LABELS[:25]))
    job = {"model": str(smollm2), "prompts": prompts, "labels": labels}
    job["config"] = {"windows": [[1, 25]]}
    from_vllm = np.array(run_engine(tmp_path, job)["scores"])
    assert from_vllm.shape == (1, 25)
    np.testing.assert_allclose(from_vllm, backend.choice_logprobs(prompts, labels), atol=1e-3)


def run_engine(tmp_path: Path, job: dict) -> dict:
    """ENGINE_SCRIPT on `job` in vLLM's environment; its scores and texts."""
    (tmp_path / "job.json").write_text(json.dumps(job))
    (tmp_path / "engine.py").write_text(ENGINE_SCRIPT)
    run = subprocess.run(
        [VLLM_PYTHON, "engine.py", "job.json", "out.json"],
        cwd=tmp_path,
        env={**os.environ, **VLLM_ENV},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads((tmp_path / "out.json").read_text())


def vllm_cpu_op(name: str) -> bool:
    """Whether vLLM's CPU build, with the kernels it loads on this CPU, has op `name`."""
    probe = (
        "from vllm.platforms import current_platform\ncurrent_platform.import_kernels()\n"
        f"import torch\nprint(hasattr(torch.ops._C, {name!r}))"
    )
    done = subprocess.run(
        [VLLM_PYTHON, "-c", probe], capture_output=True, text=True, env={**os.environ, **VLLM_ENV}
    )
    return done.stdout.strip().endswith("True")


TRITON_VALIDATION = """
import json, sys, torch
from vllm.platforms.interface import DeviceCapability
from vllm.v1.attention.backend import AttentionType
from vllm.v1.attention.backends.triton_attn import TritonAttentionBackend
print(json.dumps([TritonAttentionBackend.validate_configuration(
    head_size=int(size), dtype=torch.float16, kv_cache_dtype="auto", block_size=16,
    use_mla=False, has_sink=False, use_sparse=False, use_mm_prefix=False,
    use_per_head_quant_scales=False, device_capability=DeviceCapability(7, 5),
    attn_type=AttentionType.DECODER) for size in sys.argv[1:]]))
"""


def test_the_tiny_vllm_model_passes_triton_attentions_validation_on_a_t4(tmp_path, sample):
    """TRITON_ATTN, which the kit forces on a T4, validated by vLLM itself (the CPU build's
    `validate_configuration`, vllm/v1/attention/backend.py, with vLLM 0.19.1's arguments; its
    `supports_head_size` is 0.19.1's `head_size >= 32`, vllm/v1/attention/backends/
    triton_attn.py): the model the GPU check gives vLLM passes, the 8-wide one would not."""
    from tiny_models import sample_corpus, tiny_causal_lm, tiny_vllm_lm

    corpus = sample_corpus(sample)
    sizes = []
    for folder in (
        tiny_vllm_lm(tmp_path / "vllm", corpus),
        tiny_causal_lm(tmp_path / "lm", corpus),
    ):
        config = json.loads((folder / "config.json").read_text())
        sizes.append(str(config["hidden_size"] // config["num_attention_heads"]))  # Qwen2's
    done = subprocess.run(
        [VLLM_PYTHON, "-c", TRITON_VALIDATION, *sizes],
        capture_output=True,
        text=True,
        env={**os.environ, **VLLM_ENV},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [[], ["head_size not supported"]]


def test_vllm_scores_the_gptq_reranker_as_the_transformers_backend(tmp_path, sample) -> None:
    """`eedi train-reranker --train-reranker-quantize-bits 4`'s output format (AutoRound's
    GPTQ, groups of 128) loads in vLLM, which is what a T4 runs it with, and scores the
    listwise prompts as the kit's transformers backend scores the same folder (AutoRound's
    kernels), both in fp16."""
    if not vllm_cpu_op("cpu_gemm_wna16"):
        # vllm/platforms/cpu.py import_kernels: without AVX-512 it loads vllm._C_AVX2, built
        # without cpu_gemm_wna16, which GPTQ's CPU kernel calls
        # (vllm/model_executor/kernels/linear/mixed_precision/cpu.py, CPUWNA16)
        pytest.skip("vLLM's CPU build has no GPTQ kernel (cpu_gemm_wna16) on a CPU without AVX-512")
    from tiny_models import sample_corpus, tiny_vllm_lm

    from eedi_utils.train.reranker.quantize import calibration_windows, quantize_gptq

    model = tiny_vllm_lm(tmp_path / "lm", sample_corpus(sample))
    data = CompetitionData(sample)
    names = data.misconceptions["MisconceptionName"].tolist()
    backend = TransformersBackend(model, RerankConfig(dtype="float32"), "cpu")
    prompts = [
        chat_ids(backend.tokenizer, listwise_messages(row, names[5 * i : 5 * i + 5]))
        for i, (_, row) in enumerate(labelled(data.train()).head(12).iterrows())
    ]
    gptq = quantize_gptq(
        model, tmp_path / "gptq", calibration_windows(prompts, 64, 8, 0), 4, 128, 0
    )
    quantized = TransformersBackend(gptq, RerankConfig(dtype="float16"), "cpu")
    labels = single_token_ids(quantized.tokenizer, list(LABELS[:5]))
    job = {"model": str(gptq), "prompts": prompts[:4], "labels": labels}
    job["config"] = {"dtype": "float16"}
    from_vllm = np.array(run_engine(tmp_path, job)["scores"])
    from_transformers = quantized.choice_logprobs(prompts[:4], labels)
    full = backend.choice_logprobs(prompts[:4], labels)
    differences = np.abs(from_vllm - from_transformers).max(), np.abs(from_vllm - full).max()
    print(
        f"GPTQ: vLLM vs transformers {differences[0]:.4f}, vs the fp32 model {differences[1]:.4f}"
    )
    np.testing.assert_allclose(from_vllm, from_transformers, atol=2e-3)
    assert differences[1] > 5e-3  # both scored the 4-bit weights, not the fp32 ones


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(smollm2, tmp_path_factory):
    """vLLM's OpenAI-compatible server on loopback, started and stopped here."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    command = [
        VLLM_PYTHON,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(smollm2),
        "--served-model-name",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "2048",
        "--dtype",
        "float32",
        "--enforce-eager",
    ]
    with log.open("w") as out:
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **VLLM_ENV}
        )
    try:
        deadline = time.time() + 600
        while True:
            if server.poll() is not None:
                pytest.fail(f"vLLM server exited:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"vLLM server not healthy after 600 s:\n{log.read_text()[-4000:]}")
                time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=60)


@pytest.fixture()
def small_data(tmp_path, sample) -> Path:
    """Three labelled questions, their misconceptions and two that no row has."""
    train = pd.read_csv(sample / "train.csv", dtype=str, keep_default_na=False).head(3)
    labels = {
        int(float(v))
        for c in train.columns
        if c.endswith("Id") and c.startswith("Misc")
        for v in train[c]
        if v
    }
    mapping = pd.read_csv(sample / "misconception_mapping.csv", dtype=str)
    ids = mapping["MisconceptionId"].astype(int)
    unseen = mapping[~ids.isin(labels)].head(2)
    small = pd.concat([mapping[ids.isin(labels)], unseen])
    folder = tmp_path / "small"
    folder.mkdir()
    train.to_csv(folder / "train.csv", index=False)
    small.to_csv(folder / "misconception_mapping.csv", index=False)
    return folder


def eedi(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "eedi_utils.cli", *args, "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_paraphrase_and_synthesize_against_vllm_server(tmp_path, small_data, vllm_server):
    config = tmp_path / "kit.toml"
    config.write_text("[generate]\nmax_tokens = 160\nconcurrency = 4\nper_misconception = 1\n")
    common = ["--generate-base-url", vllm_server, "--generate-model", "smollm2"]
    common += ["--config", str(config)]
    para = tmp_path / "para"
    paraphrase = ["paraphrase", "--data-dir", str(small_data), "--out", str(para)]
    paraphrase += ["--generate-n", "2", *common]
    result = eedi(*paraphrase)
    assert result.returncode == 0, result.stderr[-3000:]
    data = CompetitionData(small_data)
    items = 3 + len(data.misconceptions)
    counts = summary(result.stdout)
    assert counts["done"] + counts["failed"] == items and counts["done"] > 0
    assert counts["calls"] >= items and counts["prompt"] > 0 and counts["completion"] > 0
    out = CompetitionData(para)
    pd.testing.assert_frame_equal(out.train(), data.train())
    written = pd.read_csv(para / "train.csv", dtype=str, keep_default_na=False)
    assert 3 < len(written) <= 3 * 3 and len(JsonlCache(para / "cache.jsonl")) == counts["done"]
    assert 0 < len(out.misconception_variants()) <= 2 * len(data.misconceptions)

    again = summary(eedi(*paraphrase).stdout)
    assert again["cached"] == counts["done"] and again["calls"] <= 3 * counts["failed"]

    synth = tmp_path / "synth"
    result = eedi("synthesize", "--data-dir", str(para), "--out", str(synth), *common)
    assert result.returncode == 0, result.stderr[-3000:]
    made = summary(result.stdout)
    assert made["done"] + made["failed"] == 2  # one per unseen misconception
    rows = pd.read_csv(synth / "train.csv", dtype=str, keep_default_na=False)
    new = rows[(rows["Generated"] == "True") & (rows["SourceQuestionId"] == "")]
    assert len(new) == made["done"] - made["rejected"]
    CompetitionData(synth).train()  # loads and validates


def summary(stdout: str) -> dict[str, int]:
    """The numbers of the closing summary line."""
    pattern = (
        r"done (?P<done>\d+) \(short \d+\), cached (?P<cached>\d+), failed (?P<failed>\d+), "
        r"skipped \d+, rejected by the judge (?P<rejected>\d+) \| (?P<calls>\d+) calls, "
        r"(?P<prompt>\d+) prompt \+ (?P<completion>\d+) completion tokens"
    )
    match = re.search(pattern, stdout)
    assert match, stdout
    return {k: int(v) for k, v in match.groupdict().items()}
