"""int8 weights and activations for the linear layers, calibrated on the competition's own
texts: NNCF's post-training quantisation for OpenVINO (transformer mode: SmoothQuant on the
matrix products, mixed preset) and ONNX Runtime's static quantiser (QDQ, per-channel
weights). Each calibration sample is one text, tokenised alone, so no padding skews a range."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from eedi_utils.cpu_embedder import INPUT_NAMES
from eedi_utils.extras import require

Sample = dict[str, np.ndarray]


def calibration_texts(
    queries: Sequence[str], misconceptions: Sequence[str], count: int, seed: int
) -> list[str]:
    """`count` texts, half queries and half misconception names, drawn without replacement."""
    rng = np.random.default_rng(seed)
    n_queries = min(len(queries), count // 2)
    n_names = min(len(misconceptions), count - n_queries)
    picked = [queries[i] for i in rng.choice(len(queries), n_queries, replace=False)]
    picked += [misconceptions[i] for i in rng.choice(len(misconceptions), n_names, replace=False)]
    return picked


def calibration_samples(
    texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> list[Sample]:
    """One runtime input per text (batch of one, unpadded, cut at `max_length`)."""
    samples = []
    for text in texts:
        tokens = tokenizer([text], truncation=True, max_length=max_length, return_tensors="np")
        samples.append({name: tokens[name].astype(np.int64) for name in INPUT_NAMES})
    return samples


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the time (a handler given `sys.stderr` itself
    keeps that one object, which a caller may have closed since)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def quantize_openvino(model: Any, samples: list[Sample], show_progress: bool = True) -> Any:
    """The OpenVINO model with int8 linear layers (NNCF `quantize`, transformer model type).
    NNCF's progress bars (rich, on the console's current stdout) and its logger (its own
    handler, not propagated: nncf/common/logging/logger.py) go to stderr, since stdout is the
    command's; with `show_progress` off the bars go nowhere and the logger says warnings only,
    as the root logger does under --quiet."""
    nncf = require("nncf", "int8 quantisation of an OpenVINO export")
    nncf_logger = logging.getLogger("nncf")
    for handler in nncf_logger.handlers:  # its stdout handler, made at its import (not a
        if type(handler) is logging.StreamHandler:  # subclass others attach, such as pytest's)
            handler.stream = _CurrentStderr()
    with contextlib.ExitStack() as stack:
        bars = sys.stderr if show_progress else stack.enter_context(open(os.devnull, "w"))
        stack.enter_context(contextlib.redirect_stdout(bars))
        if not show_progress:
            stack.callback(nncf_logger.setLevel, nncf_logger.level)
            nncf_logger.setLevel(max(nncf_logger.level, logging.WARNING))
        return nncf.quantize(
            model,
            nncf.Dataset(samples),
            model_type=nncf.ModelType.TRANSFORMER,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(samples),
        )


def quantize_onnx(source: Path, target: Path, samples: list[Sample]) -> Path:
    """The ONNX model with int8 matrix products against weights (ONNX Runtime's
    `quantize_static`, QDQ, per-channel weights); the attention's products of two activations
    and every product's output stay in fp32."""
    onnx = require("onnx", "int8 quantisation of an ONNX export")
    require("onnxruntime", "int8 quantisation of an ONNX export")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Samples(CalibrationDataReader):
        def __init__(self) -> None:
            self.remaining = iter(samples)

        def get_next(self) -> Sample | None:
            return next(self.remaining, None)

    graph = onnx.load(str(source)).graph
    weights = {initializer.name for initializer in graph.initializer}
    products = [n.name for n in graph.node if n.op_type == "MatMul" and set(n.input) & weights]
    quantize_static(
        str(source),
        str(target),
        Samples(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        nodes_to_quantize=products,
        extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"]},
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return target
