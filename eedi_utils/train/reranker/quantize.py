"""The merged reranker quantised to 4-bit GPTQ with AutoRound, for vLLM on a T4.

Why AutoRound (Intel's `auto-round`): it is maintained, installs into the kit's environment
(one small dependency; llm-compressor 0.14 pins transformers <= 5.17, below the kit's 5.19, and
GPTQModel 7.7 pulls a CUDA torch 2.14 and compiles kernels), tunes the rounding on calibration
data (SignRound; `iters = 0` is plain round-to-nearest), runs on CPU as on CUDA, and writes the
GPTQ format (`format="auto_gptq"`: symmetric, no act-order), which vLLM 0.19.1 runs with its
Marlin kernel from sm75 on, a T4 included (`gptq_marlin`, chosen when `[rerank] quantization`
is empty), or its plain GPTQ kernel from sm60 (`quantization = "gptq"`). AutoAWQ is
deprecated.

Calibration windows are cut from the training prompts themselves (the [rerank] chat template,
questions, candidate lists), so the rounding is tuned on the text the reranker will score.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import release_memory

from eedi_utils.extras import require

logger = logging.getLogger(__name__)
FORMAT = "auto_gptq"


def calibration_windows(
    prompts: Sequence[Sequence[int]], seqlen: int, count: int, seed: int
) -> list[torch.Tensor]:
    """`count` windows of `seqlen` tokens (each a [1, seqlen] tensor) cut from the prompts
    shuffled and joined end to end; fewer when the prompts hold fewer tokens."""
    order = np.random.default_rng(seed).permutation(len(prompts))
    stream: list[int] = []
    for i in order:
        stream.extend(prompts[i])
        if len(stream) >= seqlen * count:
            break
    windows = [
        torch.tensor([stream[start : start + seqlen]])
        for start in range(0, len(stream) - seqlen + 1, seqlen)
    ][:count]
    if not windows:
        raise ValueError(
            f"[train_reranker] quantize_seqlen {seqlen}: the training prompts hold only "
            f"{len(stream)} tokens; lower it"
        )
    if len(windows) < count:
        logger.warning("%d calibration windows of %d tokens, not %d", len(windows), seqlen, count)
    return windows


def quantize_gptq(
    model_dir: Path,
    target: Path,
    windows: list[torch.Tensor],
    bits: int,
    group_size: int,
    iters: int,
) -> Path:
    """`model_dir` (a plain transformers folder) quantised to `bits`-bit GPTQ in `target`
    (replaced), calibrated on `windows`; on every GPU there is (`device_map="auto"`), else on
    the CPU. AutoRound's model is freed before it returns."""
    auto_round = require("auto_round", "[train_reranker] quantize_bits")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    seqlen = windows[0].shape[1]
    quantizer = auto_round.AutoRound(
        str(model_dir),
        tokenizer,
        scheme=f"W{bits}A16",
        group_size=group_size,
        sym=True,
        dataset=windows,
        iters=iters,
        nsamples=len(windows),
        seqlen=seqlen,
        batch_size=min(8, len(windows)),
        device_map="auto" if torch.cuda.is_available() else "cpu",
        enable_torch_compile=False,
    )
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantizing-") as work:
        _, folder = quantizer.quantize_and_save(work, format=FORMAT)  # one format: one folder
        del quantizer, _
        release_quantizer()
        if target.exists():
            shutil.rmtree(target)
        shutil.move(folder, target)
    logger.info("%d-bit GPTQ reranker saved in %s", bits, target)
    return target


def release_quantizer() -> None:
    """Free AutoRound's model, so that the evaluation engine started next finds the memory: in
    auto-round 0.16.1 the model stays referenced by the process-wide `ModelContext` singleton
    (`context/base.py`, `AutoSkipInitMeta._instances`) until the next `AutoRound(...)` resets
    it (`compressors/base.py`); reset it and `CompressContext` now, collect, and give the freed
    CUDA blocks back."""
    from auto_round.context.compress import CompressContext
    from auto_round.context.model import ModelContext

    ModelContext.reset_context()
    CompressContext.reset_context()
    release_memory()
