"""Tiny models built from a config, with tokenizers trained on the bundled sample's text: what
the tests and `scripts/gpu_check.py` run on, since no model may come from a hub.

- `tiny_sentence_model`: a 2-layer BERT sentence-transformer (mean pooling, normalised).
- `tiny_decoder`: a 2-layer Qwen2 transformers folder without pooling (a decoder embedder).
- `tiny_causal_lm`: a 2-layer Qwen2 causal LM with a chat template, whose letters A-Z and
  "Yes"/"No" are single tokens (what the [rerank] stage scores).
- `tiny_vllm_lm`: the same with attention heads vLLM's backends accept (32 wide).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, trainers
from tokenizers.models import BPE, WordPiece
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizerFast,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Model,
)

from eedi_utils.inputs import sample_dir
from eedi_utils.rerank.prompts import LABELS, YES_NO

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def sample_corpus(sample: Path | None = None) -> list[str]:
    """Question texts and misconception names of the bundled sample."""
    sample = sample or sample_dir()
    questions = pd.read_csv(sample / "train.csv", dtype=str, keep_default_na=False)
    names = pd.read_csv(sample / "misconception_mapping.csv", dtype=str)
    return [*questions["QuestionText"], *names["MisconceptionName"]]


def tiny_sentence_model(root: Path, corpus: list[str]) -> Path:
    """`root`/sentence-model: BERT (hidden 32, 2 layers) with a WordPiece tokenizer."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules

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


def _bpe_tokenizer(corpus: list[str], max_length: int) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<unk>"]
    tokenizer.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=500, special_tokens=special)
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def _qwen2_config(
    tokenizer: PreTrainedTokenizerFast, max_length: int, hidden_size: int = 32
) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_length,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def tiny_decoder(folder: Path, corpus: list[str]) -> Path:
    """A Qwen2 base model folder (no pooling layer: the kit adds last-token pooling)."""
    fast = _bpe_tokenizer(corpus, 128)
    torch.manual_seed(0)
    Qwen2Model(_qwen2_config(fast, 128)).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def tiny_causal_lm(
    folder: Path, corpus: list[str], max_length: int = 2048, hidden_size: int = 32
) -> Path:
    """A Qwen2 causal LM folder with a chat template; A-Z, Yes and No are single tokens
    (`hidden_size` 128 and up: every linear layer quantisable in GPTQ groups of 128)."""
    fast = _bpe_tokenizer(corpus, max_length)
    fast.add_tokens([*LABELS, *YES_NO])
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    Qwen2ForCausalLM(_qwen2_config(fast, max_length, hidden_size)).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


VLLM_HEAD_SIZE = 32  # the smallest head size vLLM 0.19.1's attention backends accept (below)


def tiny_vllm_lm(folder: Path, corpus: list[str]) -> Path:
    """`tiny_causal_lm` with heads of 32 (hidden 128 over 4 heads), for vLLM: 0.19.1 refuses
    a forced backend that fails validation (vllm/platforms/cuda.py get_attn_backend_cls), and
    TRITON_ATTN, the kit's choice on a T4, takes `head_size >= 32`
    (vllm/v1/attention/backends/triton_attn.py supports_head_size); CPU_ATTN takes 32, 64, 80,
    ... (cpu_attn.py get_supported_head_sizes). `tiny_causal_lm`'s default heads are 8 wide.
    Hidden 128 also splits every linear layer into GPTQ groups of 128."""
    return tiny_causal_lm(folder, corpus, hidden_size=4 * VLLM_HEAD_SIZE)
