"""The source model as one graph, token ids and attention mask in, sentence embedding out
(its transformer and pooling, whatever they are), converted with the runtimes' own tools:
`torch.onnx.export` (TorchScript exporter) and `openvino.convert_model`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformer

from eedi_utils.cpu_embedder import INPUT_NAMES
from eedi_utils.extras import require

ONNX_OPSET = 17
EXAMPLE_TEXTS = ("What is 3/4 of 12?", "Thinks you add the numerators and the denominators")


class SentenceEmbedding(torch.nn.Module):
    """`SentenceTransformer.forward` with positional tensors, as exporters trace it."""

    def __init__(self, model: SentenceTransformer):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self.model(features)["sentence_embedding"]


def example_inputs(model: SentenceTransformer) -> dict[str, torch.Tensor]:
    """Two texts of different lengths, padded: traced shapes are then not taken for fixed."""
    tokens = model.tokenizer(list(EXAMPLE_TEXTS), padding=True, return_tensors="pt")
    return {name: tokens[name] for name in INPUT_NAMES}


def write_onnx(model: SentenceTransformer, path: Path) -> Path:
    """The model as an ONNX file with dynamic batch and sequence axes."""
    require("onnx", "exporting to ONNX")
    inputs = example_inputs(model)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUT_NAMES}
    with torch.no_grad():
        torch.onnx.export(
            SentenceEmbedding(model).eval(),
            tuple(inputs.values()),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return path


def openvino_model(model: SentenceTransformer) -> Any:
    """The model as an `openvino.Model` with dynamic batch and sequence dimensions."""
    openvino = require("openvino", "exporting to OpenVINO")
    with torch.no_grad():
        converted = openvino.convert_model(
            SentenceEmbedding(model).eval(), example_input=example_inputs(model)
        )
    for port, name in zip(converted.inputs, INPUT_NAMES):
        port.get_tensor().set_names({name})
    converted.reshape({name: openvino.PartialShape([-1, -1]) for name in INPUT_NAMES})
    return converted
