"""GPU check: exercise the kit's CUDA paths on whatever GPUs are here, on tiny models made on
the spot (no hub, no internet), and print a table of what ran, passed, failed or was skipped
(and why), with timings. Meant to finish within a few minutes.

    PYTHONPATH=. python scripts/gpu_check.py [--json OUT.json] [--allow-cpu]

Checks: retriever training steps with LoRA in fp16 and in bf16; reranker training steps
(listwise and pointwise, LoRA) and the merged folder loaded by the [rerank] stage; embedder
inference split over the GPUs present against one process; 4-bit loading of an embedder and a
QLoRA reranker step when bitsandbytes is importable; a reranker quantised to 4-bit GPTQ with
AutoRound, scored by the transformers backend (and by vLLM when importable) when auto_round is
importable; vLLM against transformers on the same prompts when vLLM is importable.
`--allow-cpu` runs what can run on a CPU (fp32, the split over two CPU workers) so the script
itself is tested without a GPU.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # tiny_models: test fixtures built from a config

from tiny_models import (  # noqa: E402
    sample_corpus,
    tiny_causal_lm,
    tiny_decoder,
    tiny_sentence_model,
    tiny_vllm_lm,
)

from eedi_utils.config import KitConfig, RetrievalConfig, load_config  # noqa: E402
from eedi_utils.data import CompetitionData, labelled  # noqa: E402
from eedi_utils.devices import cuda_runs_bf16_natively  # noqa: E402
from eedi_utils.inputs import sample_dir  # noqa: E402


class Skip(Exception):
    """A check that cannot run here; the message says why."""


class Checks:
    def __init__(self, root: Path, allow_cpu: bool):
        self.root, self.cuda = root, torch.cuda.is_available()
        self.allow_cpu = allow_cpu
        self.gpus = torch.cuda.device_count() if self.cuda else 0
        corpus = sample_corpus()
        self.sentence_model = tiny_sentence_model(root / "sentence", corpus)
        self.decoder = tiny_decoder(root / "decoder", corpus)
        self.causal_lm = tiny_causal_lm(root / "causal-lm", corpus)
        self.vllm_lm = tiny_vllm_lm(root / "vllm-lm", corpus)  # heads vLLM's backends take
        self.data = CompetitionData(sample_dir())
        self.rows: list[dict] = []

    def run(self, name: str, check: Callable[[], str]) -> None:
        started = time.perf_counter()
        try:
            status, detail = "passed", check()
        except Skip as why:
            status, detail = "skipped", str(why)
        except Exception as err:  # a failed check is reported, the others still run
            status, detail = "failed", f"{type(err).__name__}: {err}"
            traceback.print_exc()
        seconds = round(time.perf_counter() - started, 1)
        self.rows.append({"check": name, "status": status, "seconds": seconds, "detail": detail})
        print(f"[{status}] {name} ({seconds} s): {detail}", flush=True)

    def need_cuda(self) -> None:
        if not self.cuda:
            raise Skip("no CUDA GPU")

    def need_gpu_or_cpu_run(self) -> str:
        if self.cuda:
            return "cuda"
        if self.allow_cpu:
            return "cpu"
        raise Skip("no CUDA GPU (--allow-cpu runs it on the CPU)")

    def config(self) -> KitConfig:
        config = load_config(None)
        config.retrieval.show_progress = False
        config.evaluate.folds = 3
        return config

    # --- the checks ------------------------------------------------------------------------
    def retriever_lora(self, precision: str) -> str:
        if precision == "no":
            if self.need_gpu_or_cpu_run() == "cuda":
                raise Skip("the fp16 and bf16 checks cover CUDA")
        else:
            self.need_cuda()
            if precision == "bf16" and not cuda_runs_bf16_natively():
                raise Skip(f"{torch.cuda.get_device_name()} has no bf16 tensor cores (before sm80)")
        from eedi_utils.train.retriever.run import RetrieverTraining

        config = self.config()
        config.train.base_model = str(self.decoder)
        config.train.lora_r, config.train.epochs = 4, 1
        config.train.mixed_precision = precision
        config.train.unseen_prior_grid = [0.0, 0.05]
        training = RetrieverTraining(self.data, self.root / f"retriever-{precision}", config)
        training.run()
        last = training.history[-1]
        return f"{len(training.history) - 1} epoch, val map@25 {last['map@25']}"

    def reranker(self, mode: str, four_bit: bool = False) -> str:
        device = self.need_gpu_or_cpu_run()
        if four_bit:
            self.need_cuda()
            if importlib.util.find_spec("bitsandbytes") is None:
                raise Skip("bitsandbytes is not importable")
        from eedi_utils.train.reranker.run import RerankerTraining

        config = self.config()
        settings = config.train_reranker
        settings.base_model, settings.retrievers = str(self.causal_lm), [str(self.sentence_model)]
        settings.mode, settings.group_size, settings.list_sizes = mode, 4, [4, 8]
        settings.lora_r, settings.batch_size, settings.gradient_accumulation_steps = 4, 4, 1
        settings.load_in_4bit, settings.eval_rows = four_bit, 12
        config.rerank.windows, config.rerank.reverse_pass = [[1, 6]], False
        config.rerank.backend = "transformers"  # the vLLM check is its own
        if device == "cpu":
            settings.save_dtype = config.rerank.dtype = "float32"
        name = f"reranker-{mode}{'-4bit' if four_bit else ''}"
        training = RerankerTraining(self.data, self.root / name, config)
        training.run()  # "after": the [rerank] stage reranking with the merged folder
        after = training.reports["after"]
        return (
            f"{len(training.losses)} steps, loss {training.losses[0]} -> {training.losses[-1]}, "
            f"held-out map@25 {training.reports['before']['map@25']} -> {after['map@25']}"
        )

    def embedder_split(self) -> str:
        from eedi_utils.embedder import encode, load_embedder
        from eedi_utils.multi_device import encode_on_devices

        device = self.need_gpu_or_cpu_run()
        devices = [f"cuda:{i}" for i in range(self.gpus)] if device == "cuda" else ["cpu"] * 2
        if len(devices) == 1:
            devices = devices * 2  # two processes on the one GPU
        texts = sample_corpus()
        config = RetrievalConfig(device=devices[0], dtype="float32", show_progress=False)
        alone = encode(load_embedder(self.sentence_model, config), texts, config)
        config.devices = devices
        split = encode_on_devices(self.sentence_model, texts, config)
        difference = float(np.abs(split - alone).max())
        if difference > 1e-3:
            raise AssertionError(f"split embeddings differ by {difference}")
        return f"{len(texts)} texts on {devices}: max difference {difference:.1e}"

    def embedder_4bit(self) -> str:
        self.need_cuda()
        if importlib.util.find_spec("bitsandbytes") is None:
            raise Skip("bitsandbytes is not importable")
        from eedi_utils.embedder import encode, load_embedder

        texts = sample_corpus()[:64]
        full = RetrievalConfig(device="cuda:0", dtype="float16", show_progress=False)
        reference = encode(load_embedder(self.decoder_embedder(), full), texts, full)
        lines = []
        for bits in (4, 8):
            config = copy.deepcopy(full)
            config.load_in_bits = bits
            quantised = encode(load_embedder(self.decoder_embedder(), config), texts, config)
            cosine = float((quantised * reference).sum(-1).mean())
            lines.append(f"{bits}-bit mean cosine to fp16 {cosine:.3f}")
        return "; ".join(lines)

    def decoder_embedder(self) -> Path:
        """The tiny decoder as a sentence-transformers folder (last-token pooling)."""
        folder = self.root / "decoder-embedder"
        if not folder.exists():
            from eedi_utils.config import TrainConfig
            from eedi_utils.train.retriever.model import build_model

            build_model(TrainConfig(base_model=str(self.decoder)), 128, "cpu").save(str(folder))
        return folder

    def listwise_prompts(self, tokenizer, count: int = 8) -> tuple[list[list[int]], list[int]]:
        """`count` listwise prompts of 10 candidates on the sample, and the letters' token ids."""
        from eedi_utils.rerank.backends import chat_ids, single_token_ids
        from eedi_utils.rerank.prompts import LABELS, listwise_messages

        long = labelled(self.data.train()).head(count)
        names = self.data.misconceptions["MisconceptionName"].tolist()
        prompts = [chat_ids(tokenizer, listwise_messages(row, names[i : i + 10]))
                   for i, (_, row) in enumerate(long.iterrows())]  # fmt: skip
        return prompts, single_token_ids(tokenizer, LABELS[:10])

    def vllm_config(self):
        from eedi_utils.config import RerankConfig

        return RerankConfig(dtype="float16", tensor_parallel_size=1, max_model_len=1024,
                            gpu_memory_utilization=0.3)  # fmt: skip

    def reranker_gptq(self) -> str:
        device = self.need_gpu_or_cpu_run()
        if importlib.util.find_spec("auto_round") is None:
            raise Skip("auto_round is not importable (extra [quantize])")
        from eedi_utils.rerank.backends import TransformersBackend
        from eedi_utils.train.reranker.quantize import calibration_windows, quantize_gptq

        config = self.vllm_config()
        full = TransformersBackend(self.vllm_lm, config, device)
        prompts, labels = self.listwise_prompts(full.tokenizer, 24)
        windows = calibration_windows(prompts, 128, 16, seed=0)
        gptq = quantize_gptq(self.vllm_lm, self.root / "gptq", windows, 4, 128, iters=20)
        quantised = TransformersBackend(gptq, config, device).choice_logprobs(prompts, labels)
        lost = float(np.abs(quantised - full.choice_logprobs(prompts, labels)).max())
        detail = f"4-bit vs fp16 max |logprob difference| {lost:.4f} (transformers backend)"
        if not self.cuda or importlib.util.find_spec("vllm") is None:
            return f"{detail}; vLLM not run (needs CUDA and vllm)"
        from eedi_utils.rerank.vllm import VllmBackend

        got = VllmBackend(gptq, config).choice_logprobs(prompts, labels)
        difference = float(np.abs(quantised - got).max())
        if difference > 0.05:
            raise AssertionError(f"vLLM and transformers differ by {difference:.3f} on GPTQ")
        return f"{detail}; vLLM vs transformers on it {difference:.4f}"

    def vllm_against_transformers(self) -> str:
        self.need_cuda()
        if importlib.util.find_spec("vllm") is None:
            raise Skip("vllm is not importable")
        from eedi_utils.rerank.backends import TransformersBackend
        from eedi_utils.rerank.vllm import VllmBackend

        config = self.vllm_config()
        hf = TransformersBackend(self.vllm_lm, config)
        prompts, labels = self.listwise_prompts(hf.tokenizer)
        expected = hf.choice_logprobs(prompts, labels)
        got = VllmBackend(self.vllm_lm, config).choice_logprobs(prompts, labels)
        difference = float(np.abs(expected - got).max())
        same_top = float((expected.argmax(1) == got.argmax(1)).mean())
        if difference > 0.05:
            raise AssertionError(f"log-probabilities differ by {difference:.3f}")
        return f"max |logprob difference| {difference:.4f}, same top label {same_top:.0%}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the table here")
    parser.add_argument("--allow-cpu", action="store_true", help="run the CPU-able checks on CPU")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="eedi-gpu-check-") as folder:
        checks = Checks(Path(folder), args.allow_cpu)
        gpu = torch.cuda.get_device_name() if checks.cuda else "none"
        print(f"torch {torch.__version__}, GPUs: {checks.gpus} ({gpu})", flush=True)
        checks.run("retriever LoRA fp16", lambda: checks.retriever_lora("fp16"))
        checks.run("retriever LoRA bf16", lambda: checks.retriever_lora("bf16"))
        checks.run("retriever LoRA fp32 (CPU)", lambda: checks.retriever_lora("no"))
        checks.run("reranker listwise LoRA", lambda: checks.reranker("listwise"))
        checks.run("reranker pointwise LoRA", lambda: checks.reranker("pointwise"))
        checks.run("reranker QLoRA 4-bit", lambda: checks.reranker("listwise", four_bit=True))
        checks.run("embedder split over devices", checks.embedder_split)
        checks.run("embedder 4/8-bit", checks.embedder_4bit)
        checks.run("reranker GPTQ 4-bit", checks.reranker_gptq)
        checks.run("vLLM vs transformers", checks.vllm_against_transformers)
        rows = checks.rows
    print("\n| check | status | s | detail |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['check']} | {row['status']} | {row['seconds']} | {row['detail']} |")
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"gpu": gpu, "torch": torch.__version__, "rows": rows}))
    return 1 if any(r["status"] == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
