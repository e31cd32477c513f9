"""Retrieval models exported by `eedi export` (OpenVINO IR or ONNX), run on the CPU without
torch or transformers (imported, they take most of a short run): the runtime's precision and
threads are chosen for the CPU at hand and printed, and texts are tokenised by the `tokenizers`
library and encoded in length-sorted batches, as `SentenceTransformer.encode` does.

The exported graph maps token ids and the attention mask to the sentence embedding (the source
model's pooling is inside it); embeddings are L2-normalised here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers
from tqdm.auto import tqdm

from eedi_utils.config import RetrievalConfig
from eedi_utils.cpu import INT8_FLAGS, cpu_flags, cpu_name, cpu_runs_bf16_fast, cpu_threads
from eedi_utils.extras import require

logger = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
MODEL_FILES = {"openvino": "openvino_model.xml", "onnx": "model.onnx"}
"""The graph file each format writes in the export folder."""
TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask")
OPENVINO_PRECISIONS = {"auto": None, "float32": "f32", "bfloat16": "bf16", "float16": "f16"}


def is_exported(folder: str | Path) -> bool:
    """Whether `folder` holds a model written by `eedi export`."""
    return (Path(folder) / EXPORT_FILE).is_file()


def read_export(folder: str | Path) -> dict[str, Any]:
    """The export record of `folder` (format, precision, source, check)."""
    return json.loads((Path(folder) / EXPORT_FILE).read_text())


def refuse_export(folder: str | Path, purpose: str) -> None:
    """ValueError when `folder` is an export: only a runtime can load it, not torch."""
    if is_exported(folder):
        source = read_export(folder).get("source", "its source")
        raise ValueError(f"{folder} is an export for a CPU runtime: {purpose} needs {source}")


def tokenizer_record(tokenizer: Any) -> dict[str, Any]:
    """What `load_tokenizer` needs beside tokenizer.json to tokenise as `tokenizer` (a
    transformers fast tokenizer) does when called with padding and truncation."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer: no tokenizer.json")
    if tokenizer.pad_token is None:
        raise ValueError(f"{type(tokenizer).__name__} has no padding token: batches cannot pad")
    return {
        "pad_token": tokenizer.pad_token,
        "pad_id": tokenizer.pad_token_id,
        "pad_type_id": tokenizer.pad_token_type_id,
        "padding_side": tokenizer.padding_side,
        "truncation_side": tokenizer.truncation_side,
        "split_special_tokens": bool(getattr(tokenizer, "split_special_tokens", False)),
    }


def _settings_of_an_earlier_export(folder: Path, tokenizer: Any) -> dict[str, Any]:
    """`tokenizer_record`'s fields for an export written before export.json held them: read
    from tokenizer_config.json as transformers would (pad token as text or as an added-token
    object; sides right unless stated)."""
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    pad = config.get("pad_token")
    pad = pad.get("content") if isinstance(pad, dict) else pad
    if pad is None or tokenizer.token_to_id(pad) is None:
        raise ValueError(
            f"{folder}: no padding token in its tokenizer_config.json and no tokenizer record in "
            f"its {EXPORT_FILE}: export its source again"
        )
    return {
        "pad_token": pad,
        "pad_id": tokenizer.token_to_id(pad),
        "pad_type_id": int(config.get("pad_token_type_id", 0)),
        "padding_side": config.get("padding_side", "right"),
        "truncation_side": config.get("truncation_side", "right"),
        "split_special_tokens": bool(config.get("split_special_tokens", False)),
    }


def load_tokenizer(folder: Path, record: dict[str, Any], max_length: int) -> tokenizers.Tokenizer:
    """The `tokenizers.Tokenizer` of tokenizer.json, padding each batch to its longest text and
    truncating at `max_length`, as transformers' `set_truncation_and_padding` sets the same
    backend for `tokenizer(texts, padding=True, truncation=True, max_length=...)`, special
    tokens split or not as its `split_special_tokens` (transformers 5.19,
    `tokenization_utils_tokenizers.py`)."""
    path = folder / TOKENIZER_FILE
    if not path.is_file():
        raise ValueError(f"{folder} has no {TOKENIZER_FILE}: export its source again")
    tokenizer = tokenizers.Tokenizer.from_file(str(path))
    settings = record.get("tokenizer") or _settings_of_an_earlier_export(folder, tokenizer)
    tokenizer.enable_truncation(
        max_length, stride=0, strategy="longest_first", direction=settings["truncation_side"]
    )
    tokenizer.enable_padding(
        direction=settings["padding_side"],
        pad_id=settings["pad_id"],
        pad_type_id=settings["pad_type_id"],
        pad_token=settings["pad_token"],
    )
    tokenizer.encode_special_tokens = settings.get("split_special_tokens", False)
    return tokenizer


@dataclass(frozen=True)
class CpuRuntime:
    """How an exported model runs here: the runtime, the weights' precision, the precision of
    the rest of the computation and the threads."""

    format: str
    weights: str
    compute: str
    threads: int

    def describe(self, streams: int = 1) -> str:
        """E.g. 'OpenVINO, int8 weights, computing in bf16, 2 threads in 2 streams, on ...'."""
        runtime = {"openvino": "OpenVINO", "onnx": "ONNX Runtime"}[self.format]
        native = "native bf16" if cpu_runs_bf16_fast() else "no native bf16"
        split = f" in {streams} streams" if streams > 1 else ""
        return (
            f"{runtime}, {self.weights} weights, computing in {self.compute}, "
            f"{self.threads} threads{split}, on {cpu_name()} ({native})"
        )


def choose_runtime(record: dict[str, Any], config: RetrievalConfig) -> CpuRuntime:
    """The precision of what is not int8 follows `[retrieval] dtype`: 'auto' is bf16 where the
    CPU runs it natively (AVX512-BF16 or AMX) and fp32 elsewhere, where bf16 is emulated and
    slower than fp32. ONNX Runtime's CPU provider computes in fp32 only."""
    threads = cpu_threads(config.threads)
    if record["format"] == "onnx":
        if config.dtype not in ("auto", "float32"):
            raise ValueError(
                f"[retrieval] dtype {config.dtype!r}: ONNX Runtime's CPU provider runs fp32 "
                "(and int8); export with --format openvino for bf16"
            )
        return CpuRuntime("onnx", record["precision"], "fp32", threads)
    hint = OPENVINO_PRECISIONS[config.dtype]
    if hint is None:
        hint = "bf16" if cpu_runs_bf16_fast() else "f32"
    return CpuRuntime("openvino", record["precision"], hint, threads)


class CpuEmbedder:
    """An exported model folder loaded into its runtime, with its tokenizer."""

    def __init__(self, folder: str | Path, config: RetrievalConfig):
        self.folder = Path(folder)
        self.record = read_export(self.folder)
        self.runtime = choose_runtime(self.record, config)
        self.max_seq_length = min(config.max_seq_length, int(self.record["max_seq_length"]))
        self.tokenizer = load_tokenizer(self.folder, self.record, self.max_seq_length)
        self._session: Any = None
        self._compiled: Any = None
        self._requests: list[Any] = []
        self._load()
        check = self.record.get("check") or {}
        if check.get("passed") is False:
            logger.warning(
                "%s failed its export check: %s. Its rankings differ from its source's by more "
                "than the tolerance it was exported with",
                self.folder,
                check.get("summary", "see export.json"),
            )
        checked_with = set(self.record.get("cpu_flags", [])) & set(INT8_FLAGS)
        if self.record["precision"] == "int8" and checked_with - cpu_flags():
            logger.warning(
                "%s was quantised and checked on a CPU with %s, which this one lacks: its "
                "int8 products take slower paths here and may saturate; check it on this CPU "
                "(eedi evaluate --model %s) or use an fp32 export",
                self.folder,
                ", ".join(sorted(checked_with)),
                self.folder,
            )
        logger.info("loaded %s: %s", self.folder, self.runtime.describe(self.streams))

    def _load(self) -> None:
        path = str(self.folder / MODEL_FILES[self.runtime.format])
        if self.runtime.format == "onnx":
            onnxruntime = require("onnxruntime", "an ONNX export")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.runtime.threads
            options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                path, options, providers=["CPUExecutionProvider"]
            )
            return
        openvino = require("openvino", "an OpenVINO export")
        properties = {
            "INFERENCE_NUM_THREADS": self.runtime.threads,
            "INFERENCE_PRECISION_HINT": self.runtime.compute,
            # Batches side by side, one per stream: an encoding is a throughput job, and a
            # stream does not wait on the threads of the others.
            "PERFORMANCE_HINT": "THROUGHPUT",
        }
        self._compiled = openvino.Core().compile_model(path, "CPU", properties)
        # What OpenVINO made of it: the threads split into streams of one to a few threads
        # each (`cpu_streams_calculation.cpp`), hyper-threads included only where there is
        # one NUMA node (`cpu_map_scheduling.cpp`).
        threads = int(self._compiled.get_property("INFERENCE_NUM_THREADS"))
        self.runtime = dataclasses.replace(self.runtime, threads=threads)
        streams = max(1, int(self._compiled.get_property("NUM_STREAMS")))
        self._requests = [self._compiled.create_infer_request() for _ in range(streams)]

    @property
    def streams(self) -> int:
        """Batches run side by side: one per OpenVINO request, 1 for ONNX Runtime."""
        return max(1, len(self._requests))

    def share(self, batch_size: int) -> int:
        """Texts per request of a `batch_size` batch, split over the streams."""
        return -(-batch_size // self.streams)

    def _forward(
        self, batches: Iterable[tuple[np.ndarray, dict[str, np.ndarray]]], out: np.ndarray
    ) -> None:
        """Runs each (positions, inputs) batch and writes its embeddings into `out` at its
        positions. OpenVINO keeps a batch running on every stream, through a request per
        stream taken in turn, while the next ones are tokenised. Plain requests: an
        `AsyncInferQueue` with a Python callback hung on deleting the model (OpenVINO 2026.4.1,
        after 4 to 8 batches)."""
        if self._compiled is None:
            for positions, inputs in batches:
                out[positions] = self._session.run(None, inputs)[0]
            return
        requests = self._requests
        running: dict[int, np.ndarray] = {}  # request number: the positions of its batch

        def finish(number: int) -> None:
            requests[number].wait()
            out[running.pop(number)] = requests[number].get_output_tensor(0).data

        try:
            for count, (positions, inputs) in enumerate(batches):
                number = count % len(requests)
                if number in running:
                    finish(number)
                requests[number].start_async(inputs)  # copies the inputs
                running[number] = positions
            while running:
                finish(next(iter(running)))
        finally:
            for request in requests:  # none runs on once this returns or raises
                with contextlib.suppress(RuntimeError):
                    request.wait()

    def encode(
        self, texts: Sequence[str], batch_size: int, show_progress: bool = False
    ) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text, in the order given. Texts are
        encoded longest first, so each batch pads to little more than its own length. An
        OpenVINO export splits every `batch_size` texts over its streams, so about one batch is
        in flight, and in memory, at a time."""
        order = np.argsort([-len(text) for text in texts], kind="stable")
        embeddings = np.empty((len(texts), int(self.record["dimension"])), dtype=np.float32)
        size = self.share(batch_size)
        starts = range(0, len(texts), size)
        batches = (
            self._tokenised(texts, order[start : start + size])
            for start in tqdm(starts, desc="encoding", disable=not show_progress)
        )
        self._forward(batches, embeddings)
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        return embeddings / np.maximum(norms, 1e-12)

    def _tokenised(
        self, texts: Sequence[str], positions: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        encodings = self.tokenizer.encode_batch([texts[i] for i in positions])
        return positions, {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
