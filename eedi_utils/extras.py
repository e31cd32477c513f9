"""Optional stacks are extras of the package; importing one that is missing says which."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {
    "openai": "llm",
    "vllm": "vllm",
    "jupytext": "kaggle",
    "nbformat": "kaggle",
    "bitsandbytes": "gpu",
    "auto_round": "quantize",
    "openvino": "cpu",
    "onnxruntime": "cpu",
    "onnx": "export",
    "nncf": "export",
}
"""The extra of `eedi-kit` that installs each optional module."""


class MissingExtra(ImportError):
    """An optional stack that is not installed; the message names the extra to install."""


def require(module: str, purpose: str) -> ModuleType:
    """Import `module`, or fail with one message naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra = EXTRAS[module]
        raise MissingExtra(
            f"{purpose} needs the optional package {module!r} ({err}); install it with "
            f"pip install 'eedi-kit[{extra}]'"
        ) from err
