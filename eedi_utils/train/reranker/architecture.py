"""A decoder's shapes read from its `config.json` (Llama / Qwen2 / Mistral layout), for the
checks made before anything is loaded: training memory and GPTQ group sizes under tensor
parallelism."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
)


@dataclass(frozen=True)
class Architecture:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool

    @classmethod
    def from_folder(cls, folder: Path) -> Architecture:
        """The shapes in `folder/config.json`; a clear error when it is missing or lacks one."""
        path = Path(folder) / "config.json"
        if not path.is_file():
            raise ValueError(f"{path} not found: the base model must be a transformers folder")
        config = json.loads(path.read_text())
        config = config.get("text_config", config)
        missing = [key for key in KEYS if not isinstance(config.get(key), int)]
        if missing:
            raise ValueError(f"{path} has no integer {', '.join(missing)}")
        heads = config["num_attention_heads"]
        return cls(
            hidden=config["hidden_size"],
            intermediate=config["intermediate_size"],
            layers=config["num_hidden_layers"],
            heads=heads,
            kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            vocab=config["vocab_size"],
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        )

    def linears(self) -> dict[str, tuple[int, int]]:
        """(input, output) features of each linear layer of one block."""
        attention, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {
            "q_proj": (self.hidden, attention),
            "k_proj": (self.hidden, kv),
            "v_proj": (self.hidden, kv),
            "o_proj": (attention, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }

    @property
    def block_linear_parameters(self) -> int:
        """Weights of every block's linear layers (biases and norms, under 0.01%, left out)."""
        return self.layers * sum(i * o for i, o in self.linears().values())

    @property
    def embedding_parameters(self) -> int:
        """The input embeddings, and the output head when it is not tied to them."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
