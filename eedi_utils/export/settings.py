"""`[export]`: what `eedi export` writes. A plain dataclass, loaded and checked by
`eedi_utils.config` with every other section; importing it needs no extra."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ExportConfig:
    """A retrieval model exported for CPU runtimes (`eedi export MODEL --to OUT`)."""

    format: Literal["openvino", "onnx"] = field(
        default="openvino",
        metadata={
            "help": "'openvino' (bf16 on CPUs that run it natively, else fp32; int8 through "
            "NNCF) or 'onnx' (ONNX Runtime, fp32; int8 through its static quantiser)."
        },
    )
    quantize: Literal["none", "int8"] = field(
        default="none",
        metadata={
            "help": "'int8': weights and activations of the linear layers in int8, calibrated "
            "on the competition's texts; 'none': the source's weights in fp32."
        },
    )
    calibration_texts: int = field(
        default=600,
        metadata={
            "help": "Texts int8 is calibrated on: half queries of rows the check does not "
            "score, half misconception names."
        },
    )
    tolerance: float = field(
        default=0.005,
        metadata={
            "help": "Largest drop of map@25_lb against the source, on the fold the source held "
            "out, that the export accepts; past it `eedi export` fails (the folder is kept)."
        },
    )
    check: bool = field(
        default=True,
        metadata={"help": "Score the export against its source on the held-out fold."},
    )
