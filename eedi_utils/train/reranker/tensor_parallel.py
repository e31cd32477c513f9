"""Whether a GPTQ group size survives vLLM's tensor parallelism, checked from the base's shapes
before training and quantising.

vLLM splits the input features of the row-parallel layers (o_proj, down_proj) and the output
features of the column-parallel ones (q/k/v, gate/up) over the GPUs. vLLM 0.19.1's rules:
- `model_executor/layers/quantization/gptq.py` (`GPTQLinearMethod.create_weights`): the input
  features per GPU must be a multiple of the group size ("The input size is not aligned with
  the quantized weight shape"), the output features per GPU a multiple of 32 / bits;
  `gptq_marlin.py` shards the scales by whole groups (`input_size_per_partition //
  group_size`), so a group split across two GPUs is wrong there too;
- `model_executor/layers/quantization/utils/marlin_utils.py` (`verify_marlin_supports_shape`):
  Marlin also needs input features per GPU divisible by 128 and output by 64; when not,
  `kernels/linear/__init__.py` (`choose_mp_linear_kernel`) falls back to the next kernel
  (Exllama: fp16 activations only, `mixed_precision/exllama.py`; Machete, listed first, runs
  on sm90 only), so in bf16 on sm80-sm89 none may be left;
- `config/model.py` (`verify_with_parallel_config`): the attention heads divisible by the GPUs.

Qwen2.5-72B's down_proj has 29568 inputs: 14784 per GPU over 2, a multiple of 64, not of 128.
"""

from __future__ import annotations

import logging

from eedi_utils.train.reranker.architecture import Architecture

logger = logging.getLogger(__name__)
ROW_PARALLEL = ("o_proj", "down_proj")
GROUP_SIZES = (128, 64, 32)
"""Marlin's group sizes (`MARLIN_SUPPORTED_GROUP_SIZES`, besides -1), largest first."""
MARLIN_THREAD_K, MARLIN_THREAD_N = 128, 64


def split_shapes(arch: Architecture, tp: int) -> dict[str, tuple[int, int, int]]:
    """Per layer: (input features, input features per GPU, output features per GPU)."""
    shapes = {}
    for name, (inputs, outputs) in arch.linears().items():
        if name in ROW_PARALLEL:
            shapes[name] = (inputs, inputs // tp, outputs)
        else:
            shapes[name] = (inputs, inputs, outputs // tp)
    return shapes


def misfits(arch: Architecture, group_size: int, bits: int, tp: int) -> list[str]:
    """What vLLM's GPTQ kernels refuse (or shard wrongly) for `group_size` over `tp` GPUs; a
    layer whose whole input is no multiple of the group is left to the quantiser."""
    problems = []
    for name, (inputs, per_gpu, outputs) in split_shapes(arch, tp).items():
        if group_size > 0 and inputs % group_size == 0 and per_gpu % group_size:
            problems.append(
                f"{name}'s {inputs} input features are {per_gpu} per GPU, not a multiple of "
                f"{group_size}"
            )
        if outputs % (32 // bits):
            problems.append(
                f"{name}'s {outputs} output features per GPU are not a multiple of {32 // bits}"
            )
    return problems


def check_group_size(arch: Architecture, group_size: int, bits: int, tp: int) -> None:
    """Refuse a group size that vLLM cannot load over `tp` GPUs, naming the ones that work;
    warn where Marlin cannot run a layer."""
    if tp <= 1:
        return
    if arch.heads % tp or arch.intermediate % tp:
        raise ValueError(
            f"tensor parallelism {tp}: {arch.heads} attention heads and {arch.intermediate} "
            "MLP features must both divide by it (vLLM's config/model.py); set "
            "[rerank] tensor_parallel_size"
        )
    problems = misfits(arch, group_size, bits, tp)
    if problems:
        working = [g for g in GROUP_SIZES if not misfits(arch, g, bits, tp)]
        fix = (
            f"group sizes that work: {', '.join(map(str, working))}"
            if working
            else f"no group size of {GROUP_SIZES} works; lower [rerank] tensor_parallel_size"
        )
        raise ValueError(
            f"[train_reranker] quantize_group_size {group_size} with tensor parallelism {tp} "
            f"([rerank] tensor_parallel_size): {'; '.join(problems)}. vLLM refuses it "
            f"(gptq.py: 'input size is not aligned'). {fix} (the 1st place quantised its "
            "Qwen2.5-72B with AWQ, group 64)"
        )
    for name, (_, per_gpu, outputs) in split_shapes(arch, tp).items():
        if per_gpu % MARLIN_THREAD_K or outputs % MARLIN_THREAD_N:
            logger.warning(
                "%s: %d input / %d output features per GPU over %d GPUs: Marlin needs "
                "multiples of %d / %d, so vLLM falls back to Exllama, which takes fp16 only: "
                "fine on a T4; in bf16 (sm80 on) no kernel may be left, so serve it with "
                '[rerank] dtype = "float16" there',
                name, per_gpu, outputs, tp, MARLIN_THREAD_K, MARLIN_THREAD_N,
            )  # fmt: skip
