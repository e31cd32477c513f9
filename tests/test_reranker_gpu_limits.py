"""`eedi train-reranker`'s checks made before anything is loaded, on Qwen2.5 config.json files
written from the real models' numbers (no download), under the T4 x2 and H200 profiles:
- the GPTQ group size against vLLM 0.19.1's tensor parallelism (`train/reranker/
  tensor_parallel.py`, following vllm `model_executor/layers/quantization/gptq.py`,
  `gptq_marlin.py`, `utils/marlin_utils.py`, `config/model.py`);
- the training memory (`train/reranker/memory.py`, following peft 0.21.2
  `utils/other.py::prepare_model_for_kbit_training`, transformers 5.19
  `quantizers/base.py::get_keys_to_not_convert`, bitsandbytes 0.50.2 `nn/modules.py` and
  `functional.py`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from eedi_utils.config import RerankerTrainConfig, load_config
from eedi_utils.data import CompetitionData
from eedi_utils.train.reranker.architecture import Architecture
from eedi_utils.train.reranker.memory import GIB, check_training_memory, training_memory
from eedi_utils.train.reranker.run import RerankerTraining
from eedi_utils.train.reranker.tensor_parallel import check_group_size

QWEN25 = {  # the models' config.json on the hub
    "14b": {"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 48,
            "num_attention_heads": 40, "num_key_value_heads": 8},
    "32b": {"hidden_size": 5120, "intermediate_size": 27648, "num_hidden_layers": 64,
            "num_attention_heads": 40, "num_key_value_heads": 8},
    "72b": {"hidden_size": 8192, "intermediate_size": 29568, "num_hidden_layers": 80,
            "num_attention_heads": 64, "num_key_value_heads": 8},
}  # fmt: skip


def qwen25(folder: Path, size: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": 152064,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        **QWEN25[size],
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture()
def arch(tmp_path: Path, request: pytest.FixtureRequest) -> Architecture:
    return Architecture.from_folder(qwen25(tmp_path / request.param, request.param))


def training(
    sample: Path, base: Path, tmp_path: Path, tensor_parallel_size: int = 0, **settings
) -> RerankerTraining:
    config = load_config(
        None,
        {
            "train_reranker": {"base_model": str(base), **settings},
            "rerank": {"tensor_parallel_size": tensor_parallel_size},
            "evaluate": {"folds": 3},
        },
    )
    return RerankerTraining(CompetitionData(sample), tmp_path / "out", config)


@pytest.mark.parametrize("arch", ["72b"], indirect=True)
def test_72b_down_proj_split_over_2_gpus_refuses_group_128_and_names_64(arch) -> None:
    with pytest.raises(ValueError) as error:
        check_group_size(arch, 128, 4, tp=2)
    message = str(error.value)
    assert "down_proj's 29568 input features are 14784 per GPU, not a multiple of 128" in message
    assert "group sizes that work: 64, 32" in message
    assert "o_proj" not in message  # 8192 / 2 = 4096 divides
    check_group_size(arch, 64, 4, tp=2)
    check_group_size(arch, 128, 4, tp=1)  # nothing split


@pytest.mark.parametrize("arch", ["72b"], indirect=True)
def test_72b_over_4_gpus_only_group_32_works(arch) -> None:
    with pytest.raises(ValueError, match="7392 per GPU, not a multiple of 64.*work: 32"):
        check_group_size(arch, 64, 4, tp=4)


@pytest.mark.parametrize("arch", ["72b"], indirect=True)
def test_72b_group_64_loads_but_marlin_cannot_run_its_down_proj(arch, caplog) -> None:
    """marlin_utils.py: input features per GPU must divide by 128 (GPTQ_MARLIN_MIN_THREAD_K)."""
    with caplog.at_level(logging.WARNING):
        check_group_size(arch, 64, 4, tp=2)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "down_proj: 14784 input" in warned[0]


@pytest.mark.parametrize("arch", ["14b", "32b"], indirect=True)
def test_14b_and_32b_take_group_128_over_2_gpus(arch, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        check_group_size(arch, 128, 4, tp=2)  # 6912 and 13824 per GPU
    assert not caplog.records  # and Marlin runs every layer


@pytest.mark.parametrize("arch", ["14b"], indirect=True)
def test_heads_must_divide_by_the_gpus(arch) -> None:
    """vllm config/model.py: 40 attention heads over 3 GPUs is refused."""
    with pytest.raises(ValueError, match="40 attention heads"):
        check_group_size(arch, 128, 4, tp=3)


def test_train_reranker_refuses_the_group_before_training_on_t4_x2(
    sample: Path, tmp_path: Path, t4
) -> None:
    """[rerank] tensor_parallel_size 0 is every visible GPU: 2 on the T4 x2 profile, as the
    vLLM engine would take them (`rerank/engine.py`)."""
    base = qwen25(tmp_path / "72b", "72b")
    with pytest.raises(ValueError, match="tensor parallelism 2.*work: 64, 32"):
        training(sample, base, tmp_path, quantize_bits=4)
    training(sample, base, tmp_path, quantize_bits=4, quantize_group_size=64)
    training(sample, base, tmp_path, quantize_bits=0)


def test_one_h200_checks_the_group_for_kaggles_t4_x2_too(
    sample: Path, tmp_path: Path, h200
) -> None:
    """A 72B quantised on one H200 is submitted on the T4 x2 (TP 2): group 128 is refused
    there unless [rerank] tensor_parallel_size says the engine runs on one GPU."""
    base = qwen25(tmp_path / "72b", "72b")
    with pytest.raises(ValueError, match="tensor parallelism 2.*work: 64, 32"):
        training(sample, base, tmp_path, quantize_bits=4)
    training(sample, base, tmp_path, quantize_bits=4, tensor_parallel_size=1)


@pytest.mark.parametrize("arch", ["14b"], indirect=True)
def test_14b_qlora_memory_follows_peft_fp32_cast_and_nf4(arch) -> None:
    estimate = training_memory(arch, RerankerTrainConfig(base_model="x", load_in_4bit=True))
    embeddings_fp32 = 2 * 152064 * 5120 * 4  # embed_tokens and the untied lm_head, cast by peft
    nf4 = estimate.base - embeddings_fp32
    assert embeddings_fp32 == pytest.approx(6.23e9, rel=1e-3)
    assert nf4 == pytest.approx(48 * 275_251_200 * 0.5159, rel=1e-3)  # ~6.8 GB
    assert estimate.trained == pytest.approx(1.10e9, rel=0.01)  # LoRA r 16 + grads + Adam
    assert estimate.base + estimate.trained > 13 * GIB


@pytest.mark.parametrize("arch", ["14b"], indirect=True)
def test_14b_qlora_is_refused_on_a_t4_with_the_numbers(arch, t4) -> None:
    cfg = RerankerTrainConfig(base_model="x", load_in_4bit=True)
    with pytest.raises(ValueError) as error:
        check_training_memory(arch, cfg, 0)
    message = str(error.value)
    assert "15.6 GiB (base weights 12.1" in message
    assert "Tesla T4 0 has 14.8 GiB free of 14.8" in message
    assert "bf16 base (no 4-bit) needs about 31 GiB" in message and "80 GB" in message


@pytest.mark.parametrize("arch", ["14b"], indirect=True)
def test_14b_fits_an_h200_in_4_bits_and_in_bf16_but_not_with_little_free(
    arch, h200, monkeypatch
) -> None:
    from gpu_profiles import H200, apply

    for load_in_4bit in (True, False):
        cfg = RerankerTrainConfig(base_model="x", load_in_4bit=load_in_4bit)
        assert check_training_memory(arch, cfg, 0).total < 32 * GIB
    apply(monkeypatch, H200, free=20 * GIB)  # another process holds the rest
    with pytest.raises(ValueError, match="has 20.0 GiB free of 140.4"):
        check_training_memory(arch, RerankerTrainConfig(base_model="x"), 0)


def test_train_reranker_checks_memory_for_its_gpu(sample: Path, tmp_path: Path, t4) -> None:
    """The command's own check, fp16 on the T4 ([rerank] dtype auto): QLoRA of the 14B with
    the default batch of 2 prompts of 2048 tokens is refused; with 1 prompt of 256 tokens and
    LoRA rank 4 it fits (about 12.6 GiB, the fp32 embeddings and NF4 blocks most of it)."""
    base = qwen25(tmp_path / "14b", "14b")
    with pytest.raises(ValueError, match="Tesla T4 0 has 14.8 GiB free"):
        training(sample, base, tmp_path, load_in_4bit=True).check_memory()
    short = dict(load_in_4bit=True, max_length=256, lora_r=4, batch_size=1)
    training(sample, base, tmp_path, **short).check_memory()


def test_lora_on_an_fp32_base_counts_4_bytes_a_weight(sample: Path, tmp_path: Path, h200, caplog):
    """[rerank] dtype float32 under LoRA: the base loads in fp32 (`RerankerTraining.load_model`),
    55 GiB of Qwen2.5-14B weights, twice the bf16 figure."""
    base = qwen25(tmp_path / "14b", "14b")
    for dtype, weights in (("float32", "base weights 55.0"), ("bfloat16", "base weights 27.5")):
        config = load_config(
            None,
            {"train_reranker": {"base_model": str(base)}, "rerank": {"dtype": dtype},
             "evaluate": {"folds": 3}},
        )  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.INFO):
            RerankerTraining(CompetitionData(sample), tmp_path / "out", config).check_memory()
        assert weights in caplog.text
